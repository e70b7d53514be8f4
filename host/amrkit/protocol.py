"""Alert protocol v2 (docs/protocol.md): unit keys, frames and ack tags.

The firmware has its own implementation (firmware/amr/frame.py on
cryptolib); both are checked against tests/vectors/frames.json.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 2  # frames of any other version are rejected (version 1: a downgrade)
AD_LENGTH = 31  # the whole legacy advertising payload
RID_LENGTH = 8
PLAINTEXT_LENGTH = 13
MIC_LENGTH = 8
AD_HEADER = bytes((AD_LENGTH - 1, 0xFF))  # one manufacturer-specific AD structure
ACK_AD_HEADER = bytes((RID_LENGTH + 1, 0xFF))
MAX_COUNTER = 0xFFFFFFFE  # 0xFFFFFFFF is never used: the unit must be re-keyed

_NONCE_TAIL = b"\x01"  # the nonce's last byte: fixed, it did not change with v2
_RID_PREFIX = b"AMR1RID"
_ACK_PREFIX = b"AMR1ACK"
_SERVICE_PREFIX = b"AMR1SVC"
_PASSKEY_PREFIX = b"AMR1PIN"
# Service-mode advertising (protocol §10): one manufacturer-specific AD
# structure holding a random nonce u32 and the unit's token for it; its
# header is the only constant.
SERVICE_AD_PREFIX = bytes((4 + RID_LENGTH + 1, 0xFF))
_HKDF_SALT = b"AMR-v1 unit keys"
# Proof of keys (§11): the challenge key's input block and the MAC's domain.
_PROOF_KEY_BLOCK = b"AMR1PRF" + bytes(9)
PROOF_DOMAIN = b"AMR1 proof of keys"
PROOF_NONCE_LENGTH = 16
_PLAINTEXT = struct.Struct("<BIIBBBB")

FLAG_LOW_BATTERY = 0x01
FLAG_FAULT = 0x02
FLAG_BELOW_FLOOR = 0x04
FLAGS_DEFINED = FLAG_LOW_BATTERY | FLAG_FAULT | FLAG_BELOW_FLOOR
BATTERY_MAX_PCT = 100
BATTERY_UNKNOWN = 255


class Kind(IntEnum):
    ALERT = 1
    ALERT_RETRANSMISSION = 2
    HEARTBEAT = 3
    TEST_PRESS = 4
    LOW_BATTERY = 5
    FAULT = 6


# Kinds whose alert id names an alert (or a test press); the others carry 0.
ALERT_KINDS = frozenset((Kind.ALERT, Kind.ALERT_RETRANSMISSION, Kind.TEST_PRESS))


@dataclass(frozen=True)
class UnitKeys:
    """The three keys of one unit. Never printed: repr hides them."""

    enc: bytes
    id: bytes
    ack: bytes

    def __repr__(self) -> str:
        return "UnitKeys(<hidden>)"


@dataclass
class KnownUnit:
    """A unit a receiver or host holds the keys of."""

    unit: str  # unit id, hex
    keys: UnitKeys
    heartbeat_s: int = 3600


@dataclass(frozen=True)
class Frame:
    kind: Kind
    counter: int
    alert_id: int = 0
    attempt: int = 0
    battery_pct: int = BATTERY_UNKNOWN
    flags: int = 0
    # The unit's RTC clock when it sealed the frame, whole seconds mod 2**32:
    # runs through deep sleep, starts again from 0 at a power loss.
    clock_s: int = 0


def derive_keys(registry_secret: bytes, unit_id: bytes) -> UnitKeys:
    """Per-unit keys from the registry secret (HKDF-SHA256, one per purpose)."""
    if len(registry_secret) < 16:
        raise ValueError("registry secret must be at least 16 bytes")
    if len(unit_id) != 8:
        raise ValueError("unit id must be 8 bytes")

    def key(purpose: bytes) -> bytes:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=16,
            salt=_HKDF_SALT,
            info=b"AMR-v1 " + purpose + b" " + unit_id,
        )
        return hkdf.derive(registry_secret)

    return UnitKeys(enc=key(b"enc"), id=key(b"id"), ack=key(b"ack"))


def _ecb(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _check_counter(counter: int) -> None:
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"counter {counter} outside 0..{MAX_COUNTER}")


def rid(id_key: bytes, counter: int) -> bytes:
    """The rolling identifier of the frame with this counter."""
    _check_counter(counter)
    return _ecb(id_key, _RID_PREFIX + struct.pack("<I", counter) + bytes(5))[:RID_LENGTH]


def nonce(counter: int, rolling_id: bytes) -> bytes:
    return struct.pack("<I", counter) + rolling_id + _NONCE_TAIL


def ack_tag(ack_key: bytes, alert_id: int) -> bytes:
    _check_counter(alert_id)
    return _ecb(ack_key, _ACK_PREFIX + struct.pack("<I", alert_id) + bytes(5))[:RID_LENGTH]


def ack_ad(ack_key: bytes, alert_id: int) -> bytes:
    """The advertising payload with which a receiver acknowledges an alert."""
    return ACK_AD_HEADER + ack_tag(ack_key, alert_id)


def service_token(id_key: bytes, nonce: int) -> bytes:
    """What a unit in service mode advertises with `nonce`."""
    return _ecb(id_key, _SERVICE_PREFIX + struct.pack("<I", nonce) + bytes(5))[:RID_LENGTH]


def service_ad(id_key: bytes, nonce: int) -> bytes:
    return SERVICE_AD_PREFIX + struct.pack("<I", nonce) + service_token(id_key, nonce)


def service_passkey(id_key: bytes, nonce: int) -> int:
    """The 6-digit passkey a unit "displays" (it has no display) to a host
    pairing in the service session that advertises `nonce`; only a holder
    of its keys can compute it, and it is new each session."""
    block = _ecb(id_key, _PASSKEY_PREFIX + struct.pack("<I", nonce) + bytes(5))
    return int.from_bytes(block[:4], "little") % 1_000_000


def proof_key(keys: UnitKeys) -> bytes:
    """K_proof: E(K_enc, B) xor E(K_id, B) xor E(K_ack, B), B = "AMR1PRF" | 9 x 00.
    Depends on all three keys; used only to answer challenges."""
    blocks = [_ecb(k, _PROOF_KEY_BLOCK) for k in (keys.enc, keys.id, keys.ack)]
    return bytes(a ^ b ^ c for a, b, c in zip(*blocks, strict=True))


def proof_mac(keys: UnitKeys, unit_id: bytes, generation: int, nonce: bytes) -> bytes:
    """What a unit holding `keys` as generation `generation` answers to the
    challenge `nonce` (16 bytes): AES-CMAC(K_proof, "AMR1 proof of keys" | U |
    u32le(generation) | nonce)."""
    if len(unit_id) != 8:
        raise ValueError("unit id must be 8 bytes")
    if len(nonce) != PROOF_NONCE_LENGTH:
        raise ValueError(f"the challenge nonce must be {PROOF_NONCE_LENGTH} bytes")
    mac = cmac.CMAC(algorithms.AES(proof_key(keys)))
    mac.update(PROOF_DOMAIN + unit_id + struct.pack("<I", generation) + nonce)
    return mac.finalize()


def encode(keys: UnitKeys, frame: Frame) -> bytes:
    """The 31-byte advertising payload of a frame."""
    plaintext = _PLAINTEXT.pack(
        VERSION << 4 | frame.kind,
        frame.clock_s & 0xFFFFFFFF,
        frame.alert_id,
        min(frame.attempt, 255),
        frame.battery_pct,
        frame.flags,
        0,
    )
    return seal(keys, frame.counter, plaintext)


def seal(keys: UnitKeys, counter: int, plaintext: bytes) -> bytes:
    """The advertising payload carrying `plaintext` (13 bytes, whatever they
    say) under this counter: encode()'s last step, and how test frames that
    break the rules of section 3.4 are made."""
    if len(plaintext) != PLAINTEXT_LENGTH:
        raise ValueError(f"a plaintext is {PLAINTEXT_LENGTH} bytes")
    rolling_id = rid(keys.id, counter)
    sealed = AESCCM(keys.enc, tag_length=MIC_LENGTH).encrypt(
        nonce(counter, rolling_id), plaintext, rolling_id
    )
    return AD_HEADER + rolling_id + sealed


class FrameError(ValueError):
    """A frame that does not verify; `reason` is a short code for counters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split(ad: bytes) -> bytes:
    """The RID of a well-formed advertising payload; FrameError otherwise."""
    if len(ad) != AD_LENGTH:
        raise FrameError("length")
    if ad[:2] != AD_HEADER:
        raise FrameError("header")
    return ad[2 : 2 + RID_LENGTH]


def decode(enc_key: bytes, counter: int, ad: bytes) -> Frame:
    """Verify and decrypt a payload whose RID resolved to `counter`."""
    rolling_id = split(ad)
    try:
        plaintext = AESCCM(enc_key, tag_length=MIC_LENGTH).decrypt(
            nonce(counter, rolling_id), ad[2 + RID_LENGTH :], rolling_id
        )
    except Exception as err:  # InvalidTag: forged, corrupted or foreign
        raise FrameError("mic") from err
    version_kind, clock_s, alert_id, attempt, battery, flags, reserved = _PLAINTEXT.unpack(
        plaintext
    )
    if version_kind >> 4 != VERSION:
        raise FrameError("version")
    try:
        kind = Kind(version_kind & 0x0F)
    except ValueError as err:
        raise FrameError("kind") from err
    frame = Frame(kind, counter, alert_id, attempt, battery, flags, clock_s)
    _check_fields(frame, reserved)
    return frame


def _check_fields(frame: Frame, reserved: int) -> None:
    """The rules of sections 3.4 and 3.5 that a MIC cannot enforce: a frame
    sealed with the right key that breaks them was not made by a conforming
    unit, and is rejected rather than guessed at."""
    if reserved:
        raise FrameError("reserved")
    if frame.flags & ~FLAGS_DEFINED:
        raise FrameError("flags")
    if BATTERY_MAX_PCT < frame.battery_pct < BATTERY_UNKNOWN:
        raise FrameError("battery")
    if frame.kind in ALERT_KINDS:
        # An alert id is a counter reserved before the first frame of its
        # alert, so never 0 (which means "none") and below every frame's counter.
        if not 0 < frame.alert_id < frame.counter:
            raise FrameError("alert_id")
    elif frame.alert_id:
        raise FrameError("alert_id")
    # The burst is attempt 0 and only the burst; a retry is attempt 1 on.
    # Other kinds may count attempts: a cover sequence numbers its heartbeats.
    if (frame.kind == Kind.ALERT and frame.attempt) or (
        frame.kind == Kind.ALERT_RETRANSMISSION and not frame.attempt
    ):
        raise FrameError("attempt")
