"""An attacker on the air against the reference receiver.

Legitimate units keep sending (heartbeats and alerts, each frame once, in
order) while the attacker mixes in frames of these kinds:

  random       31 bytes that look like a frame (`1E FF` and 29 random bytes)
  wrong_key    well-formed frames sealed under keys of another registry
  leaked_id    the right rolling identifier of a unit's next counters (K_id
               leaked) with a ciphertext under the wrong K_enc
  bit_flip     a unit's genuine next frame with one bit flipped, sent
               before the genuine one
  replay       genuine frames the receiver already accepted, sent again
               from seconds to days later
  revoked      frames under the keys of a unit since re-keyed (a returned
               unit's old keys), counters ahead of anything it sent
  clone        alerts from a clone holding a revoked unit's keys, at the
               counters the revoked unit would use next

None may be accepted or raise an event; every genuine frame must still be
accepted, and no event may carry a key.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amrkit.protocol import Frame, Kind, KnownUnit, derive_keys, encode
from amrkit.receiver import Receiver

ATTACKS = ("random", "wrong_key", "leaked_id", "bit_flip", "replay", "revoked", "clone")
UNITS = 8
DAY_S = 86_400.0


@dataclass
class _Unit:
    known: KnownUnit
    counter: int = 1  # the next counter it sends (alert ids must be below it)
    sent: list[tuple[float, bytes]] = field(default_factory=list)  # accepted genuine frames

    def next_frame(self, rng: random.Random) -> bytes:
        counter = self.counter
        self.counter += 1
        if rng.random() < 0.1 and counter > 1:
            frame = Frame(Kind.ALERT, counter, alert_id=counter - 1)
        else:
            frame = Frame(Kind.HEARTBEAT, counter)
        return encode(self.known.keys, frame)


@dataclass
class AdversaryReport:
    per_attack: int
    sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)  # attack frames that made an event
    genuine: int = 0
    genuine_accepted: int = 0
    rejections: Counter[str] = field(default_factory=Counter)  # the receiver's own counts
    keys_in_events: int = 0

    def figures(self) -> dict[str, Any]:
        return {
            "per_attack": self.per_attack,
            "attack_frames": sum(self.sent.values()),
            "sent": dict(self.sent),
            "accepted": {a: self.accepted[a] for a in ATTACKS},
            "accepted_total": sum(self.accepted.values()),
            "genuine_frames": self.genuine,
            "genuine_accepted": self.genuine_accepted,
            "receiver_counts": dict(sorted(self.rejections.items())),
            "keys_in_events": self.keys_in_events,
        }


def _units(secret: bytes, rng: random.Random, count: int) -> list[_Unit]:
    ids = [rng.randbytes(8) for _ in range(count)]
    return [_Unit(KnownUnit(uid.hex(), derive_keys(secret, uid), 21_600)) for uid in ids]


class _Campaign:
    def __init__(self, per_attack: int, seed: int, db: Path) -> None:
        self.rng = rng = random.Random(seed)
        self.report = AdversaryReport(per_attack)
        secret = rng.randbytes(32)
        self.units = _units(secret, rng, UNITS)
        # Re-keyed units: the receiver has their new keys only; the old ones
        # (a returned unit, or a clone made from it) are the attacker's.
        self.revoked = _units(secret, rng, UNITS)
        self.foreign = _units(rng.randbytes(32), rng, UNITS)  # another registry's units
        self.wrong_enc = self.foreign[0].known.keys  # K_id leaked, K_enc guessed
        self.receiver = Receiver([u.known for u in self.units], db)
        self.t = 0.0
        self.secrets = [
            k.hex()
            for u in self.units + self.revoked
            for k in (u.known.keys.enc, u.known.keys.id, u.known.keys.ack)
        ]

    def feed(self, ad: bytes, attack: str | None) -> None:
        self.t += self.rng.uniform(0.01, 2.0)
        events = self.receiver.feed(ad, self.t)
        text = json.dumps(events)
        self.report.keys_in_events += sum(secret in text for secret in self.secrets)
        if attack is None:
            self.report.genuine += 1
            self.report.genuine_accepted += bool(events)
        else:
            self.report.sent[attack] += 1
            self.report.accepted[attack] += bool(events)

    def genuine(self) -> None:
        unit = self.rng.choice(self.units)
        ad = unit.next_frame(self.rng)
        self.feed(ad, None)
        unit.sent.append((self.t, ad))

    def attack(self, kind: str) -> None:
        rng = self.rng
        unit = rng.choice(self.units)
        if kind == "random":
            ad = b"\x1e\xff" + rng.randbytes(29)
        elif kind == "wrong_key":
            ad = rng.choice(self.foreign).next_frame(rng)
        elif kind == "leaked_id":
            ahead = unit.counter + rng.randrange(0, 200)
            forged = encode(self.wrong_enc, Frame(Kind.ALERT, ahead, alert_id=ahead - 1))
            real_rid = encode(unit.known.keys, Frame(Kind.HEARTBEAT, ahead))[2:10]
            ad = forged[:2] + real_rid + forged[10:]
        elif kind == "bit_flip":
            genuine = unit.next_frame(rng)
            bit = rng.randrange(2 * 8, 31 * 8)  # past the header: any bit of RID, text, MIC
            flipped = bytearray(genuine)
            flipped[bit // 8] ^= 1 << (bit % 8)
            self.feed(bytes(flipped), kind)
            self.feed(genuine, None)  # the real one still gets through
            unit.sent.append((self.t, genuine))
            return
        elif kind == "replay":
            if not unit.sent:
                self.genuine()
                return self.attack(kind)
            _, ad = rng.choice(unit.sent)
            # Seconds (past the duplicate window) to days after it was heard.
            self.t += rng.choice((rng.uniform(31, 600), rng.uniform(600, DAY_S), 7 * DAY_S))
        elif kind == "revoked":
            old = rng.choice(self.revoked)
            old.counter += rng.randrange(1, 50)
            ad = old.next_frame(rng)
        else:  # clone: alerts under a revoked unit's keys
            old = rng.choice(self.revoked)
            ad = encode(old.known.keys, Frame(Kind.ALERT, old.counter + 1, alert_id=old.counter))
            old.counter += 2
        self.feed(ad, kind)

    def run(self) -> AdversaryReport:
        plan = [a for a in ATTACKS for _ in range(self.report.per_attack)]
        self.rng.shuffle(plan)
        for kind in plan:
            if self.rng.random() < 0.5:
                self.genuine()
            self.attack(kind)
        self.receiver.close()
        self.report.rejections = Counter(
            {k: v for k, v in self.receiver.stats.items() if k != "accepted"}
        )
        return self.report


def run_adversary(per_attack: int, seed: int = 1, db: Path | None = None) -> AdversaryReport:
    """`per_attack` frames of each attack, mixed with genuine traffic."""
    with tempfile.TemporaryDirectory() as scratch:
        return _Campaign(per_attack, seed, db or Path(scratch) / "receiver.sqlite").run()
