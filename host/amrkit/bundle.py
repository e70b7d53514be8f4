"""Receiver bundles: the keys of the units one receiver may hear, encrypted
at rest under a passphrase (scrypt, then AES-256-GCM).

A bundle holds only what a receiver needs (encryption, identity and
acknowledgement keys of its units), never the registry secret.

Reading one checks every field before any work: its size (MAX_BUNDLE_BYTES),
its shape, and the scrypt parameters, which may be no costlier than those
write_bundle uses (n a power of two up to 2**15, r up to 8, p 1: 32 MiB and
a fraction of a second), so a damaged or hostile file cannot make the
receiver spend gigabytes or hours deriving a key. Any failure is a
BundleError whose message names the file, what is wrong and what to do.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from amrkit.protocol import KnownUnit, UnitKeys

FORMAT = "amr-receiver-bundle"
VERSION = 1
_AAD = b"amr-receiver-bundle v1"
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
# The costliest scrypt parameters a bundle may ask for: what write_bundle uses.
MAX_SCRYPT_N = _SCRYPT_N
MAX_SCRYPT_R = _SCRYPT_R
MAX_SCRYPT_P = _SCRYPT_P
SALT_BYTES = (16, 64)  # write_bundle: 16
NONCE_BYTES = 12
KEY_BYTES = 16  # each unit key (protocol.derive_keys)
UNIT_ID_DIGITS = 16
# A unit takes about 350 bytes: 16 MiB is some 45,000 units.
MAX_BUNDLE_BYTES = 16 * 2**20

_EXPORT_AGAIN = (
    "give the bundle exported for this receiver, or export it again "
    "(amr bundle export --unit UNIT --receiver CODE --out FILE)"
)


class BundleError(ValueError):
    """A bundle that cannot be opened; the message says why and what to do."""


def _key(passphrase: str, salt: bytes, n: int, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> bytes:
    if not passphrase:
        raise BundleError("empty passphrase: set one (e.g. in $AMR_BUNDLE_PASSPHRASE)")
    # surrogateescape: a passphrase from the environment that is not UTF-8
    # is used as the bytes it was given as.
    secret = passphrase.encode("utf-8", "surrogateescape")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def write_bundle(path: Path, units: list[KnownUnit], passphrase: str) -> None:
    """Seal `units` into a new file at `path` (written whole, then renamed
    over any file there). OSError if `path` names something else than a
    file: a rename would replace a device (/dev/null) or a FIFO with it."""
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file, which a bundle would replace", str(path))
    body = json.dumps(
        {
            "units": [
                {
                    "unit": u.unit,
                    "enc": u.keys.enc.hex(),
                    "id": u.keys.id.hex(),
                    "ack": u.keys.ack.hex(),
                    "heartbeat_s": u.heartbeat_s,
                }
                for u in units
            ]
        }
    ).encode()
    salt, nonce = os.urandom(16), os.urandom(NONCE_BYTES)
    sealed = AESGCM(_key(passphrase, salt, _SCRYPT_N)).encrypt(nonce, body, _AAD)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {
            "name": "scrypt",
            "salt": salt.hex(),
            "n": _SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
        },
        "nonce": nonce.hex(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class _Malformed(ValueError):
    """What is wrong with one field of a bundle (read_bundle adds the file)."""


def _field(table: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(table, dict):
        raise _Malformed(f"{where} is not a JSON object")
    if name not in table:
        raise _Malformed(f"{where} has no {name!r} field")
    value = table[name]
    # bool is an int to Python, never to a bundle.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"{where}'s {name!r} is not a {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES = {str: "string", int: "whole number", dict: "JSON object", list: "JSON list"}


def _hex(table: Any, name: str, where: str, size: int | tuple[int, int]) -> bytes:
    text = _field(table, name, str, where)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise _Malformed(f"{where}'s {name!r} is not hexadecimal") from None
    low, high = (size, size) if isinstance(size, int) else size
    if not low <= len(value) <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise _Malformed(f"{where}'s {name!r} is {len(value)} bytes, not {expected}")
    return value


def _kdf(document: dict[str, Any]) -> tuple[bytes, int, int, int]:
    """Salt, n, r and p, each checked against what write_bundle writes."""
    kdf = _field(document, "kdf", dict, "the bundle")
    name = _field(kdf, "name", str, "the bundle's kdf")
    if name != "scrypt":
        raise _Malformed(f"the bundle's kdf {name[:40]!r} is not scrypt")
    salt = _hex(kdf, "salt", "the bundle's kdf", SALT_BYTES)
    n, r, p = (_field(kdf, k, int, "the bundle's kdf") for k in ("n", "r", "p"))
    if not 2 <= n <= MAX_SCRYPT_N or n & (n - 1):
        raise _Malformed(f"the scrypt n must be a power of two from 2 to {MAX_SCRYPT_N}")
    if not 1 <= r <= MAX_SCRYPT_R:
        raise _Malformed(f"the scrypt r must be from 1 to {MAX_SCRYPT_R}")
    if not 1 <= p <= MAX_SCRYPT_P:
        raise _Malformed(f"the scrypt p must be {MAX_SCRYPT_P}")
    return salt, n, r, p


def _sealed(document: dict[str, Any]) -> tuple[bytes, bytes]:
    """The nonce and the ciphertext (with its 16-byte tag)."""
    nonce = _hex(document, "nonce", "the bundle", NONCE_BYTES)
    text = _field(document, "ciphertext", str, "the bundle")
    try:
        sealed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed("the bundle's 'ciphertext' is not base64") from None
    if len(sealed) < 16:
        raise _Malformed("the bundle's 'ciphertext' is too short to hold anything")
    return nonce, sealed


def _units(body: bytes) -> list[KnownUnit]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _Malformed("the sealed content is not JSON") from None
    units = []
    for n, u in enumerate(_field(document, "units", list, "the sealed content"), 1):
        where = f"unit {n} of the sealed content"
        unit = _field(u, "unit", str, where)
        _hex(u, "unit", where, UNIT_ID_DIGITS // 2)
        keys = UnitKeys(*(_hex(u, k, where, KEY_BYTES) for k in ("enc", "id", "ack")))
        heartbeat_s = _field(u, "heartbeat_s", int, where)
        if heartbeat_s <= 0:
            raise _Malformed(f"{where}'s 'heartbeat_s' is not a positive number of seconds")
        units.append(KnownUnit(unit, keys, heartbeat_s))
    return units


def read_bundle(path: Path, passphrase: str) -> list[KnownUnit]:
    """The units of the bundle at `path`, or a BundleError naming the file,
    what is wrong with it, and what to do."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError as err:
        raise BundleError(f"no bundle at {path}: export one for this receiver first") from err
    except IsADirectoryError as err:
        raise BundleError(f"{path} is a directory, not a receiver bundle: {_EXPORT_AGAIN}") from err
    except OSError as err:
        raise BundleError(f"cannot read the bundle {path}: {err.strerror or err}") from err
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"{path} is not a receiver bundle (larger than {MAX_BUNDLE_BYTES // 2**20} MiB): "
            f"{_EXPORT_AGAIN}"
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise BundleError(f"{path} is not a receiver bundle (not JSON): {_EXPORT_AGAIN}") from None
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or type(document.get("version")) is not int
    ):
        raise BundleError(f"{path} is not a receiver bundle: {_EXPORT_AGAIN}")
    if document["version"] != VERSION:
        raise BundleError(
            f"{path} is a version {document['version']} receiver bundle; this amr reads "
            f"version {VERSION}: {_EXPORT_AGAIN}"
        )
    try:
        salt, n, r, p = _kdf(document)
        nonce, sealed = _sealed(document)
    except _Malformed as err:
        raise BundleError(f"{path} is a damaged receiver bundle ({err}): {_EXPORT_AGAIN}") from err
    key = _key(passphrase, salt, n, r, p)
    try:
        body = AESGCM(key).decrypt(nonce, sealed, _AAD)
    except InvalidTag as err:
        raise BundleError(f"cannot open {path}: wrong passphrase, or the file was altered") from err
    try:
        return _units(body)
    except _Malformed as err:
        # Sealed under the right passphrase, so written by a faulty tool, not altered.
        raise BundleError(
            f"{path} opened, but holds no usable keys ({err}): {_EXPORT_AGAIN}"
        ) from err
