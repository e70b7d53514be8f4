"""The master key that seals the registry's secrets: 32 bytes, never in the
database, never printed.

Sources, first found wins: an explicit file (`--master-key-file`), the file
named by $AMR_MASTER_KEY_FILE, the key itself in $AMR_MASTER_KEY (64 hex
digits or base64), the OS keyring (service "amr-registry", user "master-key").
A key file holds the key as 64 hex digits and must not be readable by group
or others (0600); `amr units init --master-key-file PATH` writes one.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from amrkit.registry.errors import MasterKeyError

KEY_LENGTH = 32
ENV_KEY = "AMR_MASTER_KEY"
ENV_FILE = "AMR_MASTER_KEY_FILE"
KEYRING_SERVICE = "amr-registry"
KEYRING_USER = "master-key"

_WHERE = (
    f"give --master-key-file PATH, set ${ENV_FILE} or ${ENV_KEY}, or store one in the "
    "OS keyring (`amr units init --keyring`)"
)


class MasterKey:
    """32 secret bytes; repr and str hide them."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str = "memory") -> None:
        if len(key) != KEY_LENGTH:
            raise MasterKeyError(
                f"master key from {source} is {len(key)} bytes, not {KEY_LENGTH}: "
                "make a new one with `amr units init --master-key-file PATH`"
            )
        self._key = bytes(key)
        self.source = source

    def __repr__(self) -> str:
        return f"MasterKey(<hidden>, source={self.source!r})"

    __str__ = __repr__

    @property
    def secret(self) -> bytes:
        return self._key

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_LENGTH), "new")

    @classmethod
    def parse(cls, text: str, source: str) -> MasterKey:
        """A key written as 64 hex digits or as base64 of 32 bytes."""
        text = text.strip()
        try:
            if len(text) == 2 * KEY_LENGTH:
                return cls(bytes.fromhex(text), source)
            return cls(base64.b64decode(text, validate=True), source)
        except (ValueError, binascii.Error):
            raise MasterKeyError(
                f"master key from {source} is neither 64 hex digits nor base64 of 32 bytes"
            ) from None

    @classmethod
    def from_file(cls, path: Path) -> MasterKey:
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise MasterKeyError(f"master key file {path} is not a file")
            if info.st_mode & 0o077:
                raise MasterKeyError(
                    f"master key file {path} is readable by others: `chmod 600 {path}`"
                )
            text = path.read_text()
        except FileNotFoundError:
            raise MasterKeyError(f"no master key file at {path}: {_WHERE}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise MasterKeyError(f"cannot read master key file {path}: {err}") from None
        return cls.parse(text, f"file {path}")

    @classmethod
    def from_keyring(cls) -> MasterKey:
        text = _keyring_get()
        if text is None:
            raise MasterKeyError(f"no master key: {_WHERE}")
        return cls.parse(text, "the OS keyring")

    @classmethod
    def resolve(cls, path: Path | None = None) -> MasterKey:
        """The master key from the first source that has one (module docstring)."""
        if path is not None:
            return cls.from_file(path)
        named = os.environ.get(ENV_FILE)
        if named:
            return cls.from_file(Path(named))
        value = os.environ.get(ENV_KEY)
        if value:
            return cls.parse(value, f"${ENV_KEY}")
        return cls.from_keyring()

    def write_file(self, path: Path) -> None:
        """Write the key as hex to a new file only its owner reads (0600)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise MasterKeyError(
                f"{path} exists: a master key file is never overwritten (move it away first)"
            ) from None
        except OSError as err:
            raise MasterKeyError(f"cannot create master key file {path}: {err}") from None
        with os.fdopen(fd, "w") as out:
            out.write(self._key.hex() + "\n")

    def store_in_keyring(self) -> None:
        try:
            import keyring
            import keyring.errors

            keyring.set_password(KEYRING_SERVICE, KEYRING_USER, self._key.hex())
        except Exception as err:  # any backend failure: no keyring usable here
            raise MasterKeyError(f"cannot store the master key in the OS keyring: {err}") from None


def _keyring_get() -> str | None:
    """The key text in the OS keyring, None if there is none; a clear error
    if no keyring can be used here (a headless box has no backend)."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise MasterKeyError(
            f"no master key (the keyring package is not installed): {_WHERE}"
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except keyring.errors.NoKeyringError:
        raise MasterKeyError(f"no master key (no OS keyring backend here): {_WHERE}") from None
    except Exception as err:  # a backend that is there but fails (locked, no D-Bus)
        raise MasterKeyError(
            f"no master key (the OS keyring failed: {type(err).__name__}): {_WHERE}"
        ) from None
    return value
