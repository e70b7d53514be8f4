"""Write tests/vectors/frames.json: protocol v1 frames made by the host
codec (amrkit.protocol), which the firmware codec must reproduce byte for
byte under the MicroPython unix port (tests/firmware/test_frame.py).

The keys here are test keys derived from a public test secret."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from amrkit.protocol import (
    Frame,
    Kind,
    ack_tag,
    derive_keys,
    encode,
    proof_key,
    proof_mac,
    rid,
    service_ad,
    service_passkey,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "frames.json"
TEST_SECRET = bytes(range(32))
TEST_UNITS = [bytes.fromhex("0102030405060708"), bytes.fromhex("a0b1c2d3e4f50617")]

FRAMES = [
    Frame(Kind.ALERT, 0x105, 0x105, 0, 87, 0),
    Frame(Kind.HEARTBEAT, 0x106, 0, 0, 86, 0),
    Frame(Kind.ALERT_RETRANSMISSION, 0x107, 0x105, 1, 86, 0),
    Frame(Kind.ALERT_RETRANSMISSION, 0x10000, 0x105, 300, 40, 0x01),
    Frame(Kind.TEST_PRESS, 0, 0, 0, 100, 0),
    Frame(Kind.LOW_BATTERY, 0x7FFFFFFF, 0, 0, 9, 0x01),
    Frame(Kind.FAULT, 0xFFFFFFFE, 0, 0, 255, 0x02 | 0x04),
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
                        "rid": rid(keys.id, f.counter).hex(),
                        "ad": encode(keys, f).hex(),
                    }
                    for f in FRAMES
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(json.dumps(vectors(), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
