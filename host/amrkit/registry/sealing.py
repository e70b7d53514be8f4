"""The registry's cryptography: secrets sealed under the master key
(AES-256-GCM, AAD naming what is sealed), the master key's check value, and
HMAC-SHA256 under the registry secret over canonical JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
_KCV_LABEL = b"AMR registry master key check v1"


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value that MACs are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || AES-GCM ciphertext with tag."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """The plaintext, or None if the key, the AAD or the bytes are wrong."""
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except (InvalidTag, ValueError):
        return None


def key_check_value(key: bytes) -> str:
    """Tells a wrong master key from a right one without revealing it."""
    return hmac.new(key, _KCV_LABEL, hashlib.sha256).hexdigest()[:16]


def mac(secret: bytes, purpose: bytes, *parts: bytes) -> str:
    """HMAC-SHA256 (hex) under the registry secret, domain-separated by purpose."""
    h = hmac.new(secret, purpose + b"\0", hashlib.sha256)
    for part in parts:
        h.update(len(part).to_bytes(4, "big") + part)
    return h.hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
