"""Receiver bundles: the keys of the units one receiver may hear, encrypted
at rest under a passphrase (scrypt, then AES-256-GCM).

A bundle holds only what a receiver needs (encryption, identity and
acknowledgement keys of its units), never the registry secret.
"""

from __future__ import annotations

import base64
import json
import os
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


class BundleError(ValueError):
    """A bundle that cannot be opened; the message says why and what to do."""


def _key(passphrase: str, salt: bytes, n: int) -> bytes:
    if not passphrase:
        raise BundleError("empty passphrase: set one (e.g. in $AMR_BUNDLE_PASSPHRASE)")
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


def write_bundle(path: Path, units: list[KnownUnit], passphrase: str) -> None:
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
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(passphrase, salt, _SCRYPT_N)).encrypt(nonce, body, _AAD)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {"name": "scrypt", "salt": salt.hex(), "n": _SCRYPT_N, "r": 8, "p": 1},
        "nonce": nonce.hex(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_bundle(path: Path, passphrase: str) -> list[KnownUnit]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise BundleError(f"no bundle at {path}: export one for this receiver first") from err
    except (OSError, ValueError) as err:
        raise BundleError(f"{path} is not a receiver bundle: {err}") from err
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise BundleError(f"{path} is not a version {VERSION} receiver bundle")
    kdf = document["kdf"]
    key = _key(passphrase, bytes.fromhex(kdf["salt"]), int(kdf["n"]))
    try:
        body = AESGCM(key).decrypt(
            bytes.fromhex(document["nonce"]), base64.b64decode(document["ciphertext"]), _AAD
        )
    except InvalidTag as err:
        raise BundleError(f"cannot open {path}: wrong passphrase, or the file was altered") from err
    return [
        KnownUnit(
            u["unit"],
            UnitKeys(bytes.fromhex(u["enc"]), bytes.fromhex(u["id"]), bytes.fromhex(u["ack"])),
            int(u["heartbeat_s"]),
        )
        for u in json.loads(body)["units"]
    ]
