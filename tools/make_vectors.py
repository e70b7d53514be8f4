"""Write tests/vectors/frames.json: protocol frames made by the host codec
(amrkit.protocol), which the firmware codec must reproduce byte for byte
under the MicroPython unix port (tests/firmware/test_frame.py), and frames
sealed with the right keys that a receiver must reject. With --worked,
print the worked examples of docs/protocol.md section 8 instead, CCM
internals included (RFC 3610 over AES-ECB, independent of AESCCM).

The keys here are test keys derived from a public test secret."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from amrkit.protocol import (
    MIC_LENGTH,
    VERSION,
    Frame,
    Kind,
    ack_tag,
    derive_keys,
    encode,
    nonce,
    proof_key,
    proof_mac,
    rid,
    seal,
    service_ad,
    service_passkey,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "frames.json"
TEST_SECRET = bytes(range(32))
TEST_UNITS = [bytes.fromhex("0102030405060708"), bytes.fromhex("a0b1c2d3e4f50617")]

# Frames a conforming unit can send (docs/protocol.md 3.4, 3.5): an alert id
# below the counter, attempt 0 for the burst only; a heartbeat of a cover
# sequence with its attempt number.
# The last field is the unit's clock in seconds.
FRAMES = [
    Frame(Kind.ALERT, 0x105, 0x104, 0, 87, 0, 0x0001517F),
    Frame(Kind.HEARTBEAT, 0x106, 0, 0, 86, 0, 0x00015E28),
    Frame(Kind.ALERT_RETRANSMISSION, 0x107, 0x104, 1, 86, 0, 0x00015187),
    Frame(Kind.ALERT_RETRANSMISSION, 0x10000, 0x104, 300, 40, 0x01, 0x12345678),
    Frame(Kind.TEST_PRESS, 2, 1, 0, 100, 0, 0),
    Frame(Kind.HEARTBEAT, 0x108, 0, 3, 86, 0, 0x00016000),
    Frame(Kind.LOW_BATTERY, 0x7FFFFFFF, 0, 0, 9, 0x01, 0x7FFFFFFF),
    Frame(Kind.FAULT, 0xFFFFFFFE, 0, 0, 255, 0x02 | 0x04, 0xFFFFFFFF),
]

_PLAINTEXT = struct.Struct("<BIIBBBB")


def _raw(
    kind: int,
    counter: int,
    alert_id: int = 0,
    attempt: int = 0,
    battery: int = 86,
    flags: int = 0,
    reserved: int = 0,
    version: int = VERSION,
) -> tuple[int, bytes]:
    """(counter, plaintext) of a frame as section 3.4 lays it out, whatever
    its fields say; its unit clock is the counter (any value is valid)."""
    fields = (version << 4 | kind, counter, alert_id, attempt, battery, flags, reserved)
    return counter, _PLAINTEXT.pack(*fields)


# Frames sealed with the unit's keys that break a rule of section 3.4 or
# 3.5: a receiver rejects each, for the reason given (section 7.3).
REJECTED = [
    ("version", _raw(Kind.HEARTBEAT, 0x10F, version=1)),  # a downgrade
    ("version", _raw(Kind.HEARTBEAT, 0x110, version=VERSION + 1)),
    ("kind", _raw(0, 0x111)),
    ("kind", _raw(7, 0x112)),
    ("reserved", _raw(Kind.HEARTBEAT, 0x113, reserved=0x01)),
    ("flags", _raw(Kind.HEARTBEAT, 0x114, flags=0x08)),
    ("flags", _raw(Kind.LOW_BATTERY, 0x115, flags=0x81)),
    ("battery", _raw(Kind.HEARTBEAT, 0x116, battery=101)),
    ("battery", _raw(Kind.HEARTBEAT, 0x117, battery=254)),
    ("alert_id", _raw(Kind.HEARTBEAT, 0x118, alert_id=0x104)),
    ("alert_id", _raw(Kind.LOW_BATTERY, 0x119, alert_id=1)),
    ("alert_id", _raw(Kind.FAULT, 0x11A, alert_id=0x119)),
    ("alert_id", _raw(Kind.ALERT, 0x11B)),
    ("alert_id", _raw(Kind.ALERT_RETRANSMISSION, 0x11C, attempt=1)),
    ("alert_id", _raw(Kind.TEST_PRESS, 0x11D)),
    ("alert_id", _raw(Kind.ALERT, 0x11E, alert_id=0x11E)),
    ("alert_id", _raw(Kind.ALERT_RETRANSMISSION, 0x11F, alert_id=0x120, attempt=1)),
    ("attempt", _raw(Kind.ALERT, 0x120, alert_id=0x104, attempt=1)),
    ("attempt", _raw(Kind.ALERT_RETRANSMISSION, 0x121, alert_id=0x104)),
]


PROOF_CHALLENGES = [
    (1, bytes(16)),
    (2, bytes(range(16))),
    (0xFFFFFFFF, bytes.fromhex("ffeeddccbbaa99887766554433221100")),
]
# RFC 4493 section 4: AES-128-CMAC of the empty message, one block, 40 bytes
# and four blocks; both implementations are checked against them too.
RFC4493_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
RFC4493_MESSAGE = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
RFC4493 = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]


def vectors() -> dict[str, Any]:
    units = []
    for unit_id in TEST_UNITS:
        keys = derive_keys(TEST_SECRET, unit_id)
        units.append(
            {
                "unit_id": unit_id.hex(),
                "keys": {"enc": keys.enc.hex(), "id": keys.id.hex(), "ack": keys.ack.hex()},
                "frames": [
                    {
                        "kind": int(f.kind),
                        "counter": f.counter,
                        "alert_id": f.alert_id,
                        "attempt": f.attempt,
                        "battery_pct": f.battery_pct,
                        "flags": f.flags,
                        "clock_s": f.clock_s,
                        "rid": rid(keys.id, f.counter).hex(),
                        "ad": encode(keys, f).hex(),
                    }
                    for f in FRAMES
                ],
                "rejected": [
                    {
                        "reason": reason,
                        "counter": counter,
                        "plaintext": plaintext.hex(),
                        "ad": seal(keys, counter, plaintext).hex(),
                    }
                    for reason, (counter, plaintext) in REJECTED
                ],
                "acks": [
                    {"alert_id": a, "tag": ack_tag(keys.ack, a).hex()}
                    for a in (0, 0x105, 0xFFFFFFFE)
                ],
                "proof": {
                    "key": proof_key(keys).hex(),
                    "challenges": [
                        {
                            "generation": g,
                            "nonce": n.hex(),
                            "mac": proof_mac(keys, unit_id, g, n).hex(),
                        }
                        for g, n in PROOF_CHALLENGES
                    ],
                },
                "service": [
                    {
                        "nonce": n,
                        "ad": service_ad(keys.id, n).hex(),
                        "passkey": service_passkey(keys.id, n),
                    }
                    for n in (0, 0x1234ABCD, 0xFFFFFFFF)
                ],
            }
        )
    cmac_vectors = [
        {"key": RFC4493_KEY, "message": RFC4493_MESSAGE[: 2 * n], "mac": mac} for n, mac in RFC4493
    ]
    return {"registry_secret": TEST_SECRET.hex(), "units": units, "cmac": cmac_vectors}


# -- docs/protocol.md section 8 ----------------------------------------------

WORKED_UNIT = TEST_UNITS[0]
WORKED_ALERT, WORKED_HEARTBEAT = FRAMES[0], FRAMES[1]
_HKDF_SALT = b"AMR-v1 unit keys"


def _aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def _ccm_steps(key: bytes, frame_nonce: bytes, aad: bytes, plaintext: bytes) -> dict[str, bytes]:
    """RFC 3610 with M = 8, L = 2, one AAD block and one plaintext block."""
    flags = 0x40 | (MIC_LENGTH - 2) // 2 << 3 | (2 - 1)
    b0 = bytes((flags,)) + frame_nonce + len(plaintext).to_bytes(2, "big")
    b1 = (len(aad).to_bytes(2, "big") + aad).ljust(16, b"\0")
    b2 = plaintext.ljust(16, b"\0")
    mac = bytes(16)
    for block in (b0, b1, b2):
        mac = _aes(key, _xor(mac, block))
    a0 = bytes((2 - 1,)) + frame_nonce + (0).to_bytes(2, "big")
    a1 = a0[:-2] + (1).to_bytes(2, "big")
    s0, s1 = _aes(key, a0), _aes(key, a1)
    return {
        "b0": b0, "b1": b1, "b2": b2, "t": mac[:MIC_LENGTH], "a0": a0, "s0": s0, "a1": a1,
        "s1": s1, "ciphertext": _xor(plaintext, s1), "mic": _xor(mac[:MIC_LENGTH], s0),
    }  # fmt: skip


def _ad_lines(ad: bytes) -> list[str]:
    def spaced(b: bytes) -> str:
        return " ".join(f"{x:02x}" for x in b)

    return [
        "```",
        f"offset 0   {spaced(ad[:2]):<38} length, type",
        f"offset 2   {spaced(ad[2:10]):<38} RID",
        f"offset 10  {spaced(ad[10:23]):<38} ciphertext",
        f"offset 23  {spaced(ad[23:]):<38} MIC",
        "",
        ad.hex(),
        "```",
    ]


def _frame_example(keys: Any, frame: Frame, long_names: bool) -> list[str]:
    counter_le = struct.pack("<I", frame.counter)
    block = b"AMR1RID" + counter_le + bytes(5)
    rolling_id = rid(keys.id, frame.counter)
    frame_nonce = nonce(frame.counter, rolling_id)
    ad = encode(keys, frame)
    plaintext = _PLAINTEXT.pack(
        VERSION << 4 | frame.kind, frame.clock_s, frame.alert_id, frame.attempt,
        frame.battery_pct, frame.flags, 0,
    )  # fmt: skip
    steps = _ccm_steps(keys.enc, frame_nonce, rolling_id, plaintext)
    if steps["ciphertext"] + steps["mic"] != ad[10:]:
        raise RuntimeError("the RFC 3610 steps disagree with AESCCM")
    fields = " ".join(
        x.hex()
        for x in (
            plaintext[:1],
            plaintext[1:5],
            plaintext[5:9],
            *(plaintext[i : i + 1] for i in (9, 10, 11, 12)),
        )
    )
    cipher_name = "ciphertext (plaintext ⊕ S1[0:13])" if long_names else "ciphertext"
    mic_name = "MIC (T ⊕ S0[0:8])" if long_names else "MIC"
    rows = [
        ("counter_le32", counter_le.hex()),
        ("RID input block", block.hex()),
        ("AES-ECB(K_id, block)", _aes(keys.id, block).hex()),
        ("RID", rolling_id.hex()),
        ("nonce", frame_nonce.hex()),
        ("AAD", rolling_id.hex()),
        ("plaintext", f"{fields}` = `{plaintext.hex()}"),
        ("CCM B0", steps["b0"].hex()),
        ("CCM B1 (AAD block)", steps["b1"].hex()),
        ("CCM B2 (plaintext block)", steps["b2"].hex()),
        ("CBC-MAC T", steps["t"].hex()),
        ("CCM A0 / S0 = E(A0)", f"{steps['a0'].hex()}` / `{steps['s0'].hex()}"),
        ("CCM A1 / S1 = E(A1)", f"{steps['a1'].hex()}` / `{steps['s1'].hex()}"),
        (cipher_name, steps["ciphertext"].hex()),
        (mic_name, steps["mic"].hex()),
    ]
    return [
        "| Value | Hex |",
        "|---|---|",
        *(f"| {name} | `{value}` |" for name, value in rows),
        "",
        "The 31-byte AD:",
        "",
        *_ad_lines(ad),
    ]


def worked_examples() -> str:
    """Sections 8.1 to 8.3 of docs/protocol.md, as Markdown."""
    keys = derive_keys(TEST_SECRET, WORKED_UNIT)
    prk = hmac.HMAC(_HKDF_SALT, hashes.SHA256())
    prk.update(TEST_SECRET)
    alert, beat = WORKED_ALERT, WORKED_HEARTBEAT
    ack_block = b"AMR1ACK" + struct.pack("<I", alert.alert_id) + bytes(5)
    tag = ack_tag(keys.ack, alert.alert_id)
    lines = [
        "### 8.1 Keys",
        "",
        "| Input | Value |",
        "|---|---|",
        f"| `S` | `{TEST_SECRET.hex()}` |",
        f"| `U` | `{WORKED_UNIT.hex()}` |",
        f'| salt | `{_HKDF_SALT.hex()}` (`"{_HKDF_SALT.decode()}"`) |',
        f"| HKDF-Extract PRK | `{prk.finalize().hex()}` |",
        "",
        "| Purpose | info | Key |",
        "|---|---|---|",
        *(
            f"| {p} | `{(b'AMR-v1 ' + p.encode() + b' ' + WORKED_UNIT).hex()}` "
            f"| `K_{p} = {getattr(keys, p).hex()}` |"
            for p in ("enc", "id", "ack")
        ),
        "",
        "### 8.2 Alert",
        "",
        f"Counter `0x{alert.counter:08x}`, kind 1 (`ALERT`), alert id `0x{alert.alert_id:08x}`, "
        f"attempt {alert.attempt},",
        f"battery {alert.battery_pct} %, flags {alert.flags}, unit clock `0x{alert.clock_s:08x}` "
        f"({alert.clock_s} s).",
        "",
        *_frame_example(keys, alert, long_names=True),
        "",
        f"Acknowledgement of alert id `0x{alert.alert_id:08x}`:",
        "",
        "| Value | Hex |",
        "|---|---|",
        f"| ACK input block | `{ack_block.hex()}` |",
        f"| AES-ECB(K_ack, block) | `{_aes(keys.ack, ack_block).hex()}` |",
        f"| ACK_TAG | `{tag.hex()}` |",
        f"| ACK AD (10 bytes) | `09ff{tag.hex()}` |",
        "",
        "### 8.3 Heartbeat",
        "",
        f"Counter `0x{beat.counter:08x}`, kind 3 (`HEARTBEAT`), alert id 0, "
        f"attempt {beat.attempt},",
        f"battery {beat.battery_pct} %, flags {beat.flags}, unit clock `0x{beat.clock_s:08x}` "
        f"({beat.clock_s} s).",
        "",
        *_frame_example(keys, beat, long_names=False),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--worked", action="store_true", help="print docs/protocol.md section 8.1-8.3 instead"
    )
    args = parser.parse_args()
    if args.worked:
        print(worked_examples(), end="")
        return
    args.out.write_text(json.dumps(vectors(), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
