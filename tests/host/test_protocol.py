"""Alert protocol v2 on the host: shared vectors, verification, replay rules,
privacy of the advertising payload, downgrade."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from amrkit.protocol import (
    AD_HEADER,
    AD_LENGTH,
    BATTERY_MAX_PCT,
    BATTERY_UNKNOWN,
    FLAGS_DEFINED,
    MAX_COUNTER,
    VERSION,
    Frame,
    FrameError,
    Kind,
    KnownUnit,
    ack_ad,
    decode,
    derive_keys,
    encode,
    proof_key,
    proof_mac,
    rid,
    seal,
)
from amrkit.receiver import DUPLICATE_S, Receiver

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import make_vectors  # noqa: E402

SECRET = bytes(range(32))
UNIT_A = bytes.fromhex("0102030405060708")
UNIT_B = bytes.fromhex("a0b1c2d3e4f50617")
KEYS_A = derive_keys(SECRET, UNIT_A)
KEYS_B = derive_keys(SECRET, UNIT_B)
HOUR = 3600.0


def receiver(db: Path | str = ":memory:", **kw: int) -> Receiver:
    return Receiver([KnownUnit(UNIT_A.hex(), KEYS_A), KnownUnit(UNIT_B.hex(), KEYS_B)], db, **kw)


def alert(counter: int, alert_id: int | None = None, attempt: int = 0) -> bytes:
    """An alert frame; its alert id, as a unit reserves it, below its counter."""
    kind = Kind.ALERT if attempt == 0 else Kind.ALERT_RETRANSMISSION
    return encode(
        KEYS_A, Frame(kind, counter, counter - 1 if alert_id is None else alert_id, attempt, 80)
    )


def test_vectors_file_is_what_the_host_codec_makes() -> None:
    on_disk = json.loads((REPO / "tests" / "vectors" / "frames.json").read_text())
    assert on_disk == make_vectors.vectors()


def test_the_worked_examples_in_the_spec_are_what_the_codec_makes() -> None:
    spec = (REPO / "docs" / "protocol.md").read_text()
    assert make_vectors.worked_examples() in spec


def test_keys_are_per_unit_and_per_purpose() -> None:
    keys = {KEYS_A.enc, KEYS_A.id, KEYS_A.ack, KEYS_B.enc, KEYS_B.id, KEYS_B.ack}
    assert len(keys) == 6 and all(len(k) == 16 for k in keys)
    assert "hidden" in repr(KEYS_A) and KEYS_A.enc.hex() not in repr(KEYS_A)


def test_every_bit_flip_fails_verification() -> None:
    for ad in (alert(5), encode(KEYS_A, Frame(Kind.HEARTBEAT, 6, battery_pct=90))):
        for bit in range(AD_LENGTH * 8):
            rx = receiver()
            flipped = bytearray(ad)
            flipped[bit // 8] ^= 1 << (bit % 8)
            assert rx.feed(bytes(flipped), 0.0) == [], bit
            assert rx.stats["accepted"] == 0 and sum(rx.stats.values()) == 1
        assert receiver().feed(ad, 0.0) != []  # the unflipped frame verifies


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(Kind)),
    st.integers(0, 200),
    st.integers(0, AD_LENGTH * 8 - 1),
)
def test_bit_flips_of_any_frame_fail(kind: Kind, counter: int, bit: int) -> None:
    ad = bytearray(encode(KEYS_B, Frame(kind, counter, counter, 0, 50)))
    ad[bit // 8] ^= 1 << (bit % 8)
    rx = receiver()
    assert rx.feed(bytes(ad), 0.0) == []
    assert rx.stats["accepted"] == 0


@pytest.mark.parametrize("delay", [1.0, HOUR, 24 * HOUR], ids=["1s", "1h", "1d"])
def test_replays_are_rejected(delay: float) -> None:
    rx = receiver()
    first = alert(10)
    assert [e["event"] for e in rx.feed(first, 0.0)] == ["alert"]
    assert rx.feed(first, delay) == []
    assert rx.stats["accepted"] == 1
    # A copy within the frame's own airing is a duplicate; later, a replay.
    assert rx.stats["duplicates" if delay <= DUPLICATE_S else "rejected_replay"] == 1
    # A retransmission of the same alert is a new frame: accepted, not a new alert.
    assert rx.feed(alert(11, alert_id=9, attempt=1), delay + 1) == []
    assert rx.stats["retransmissions"] == 1 and rx.stats["accepted"] == 2


def test_replay_after_receiver_restart_is_rejected(tmp_path: Path) -> None:
    db = tmp_path / "rx.sqlite"
    rx = receiver(db)
    frame = alert(3)
    assert rx.feed(frame, 0.0)
    rx.close()
    rx = receiver(db)
    assert rx.feed(frame, 10.0) == []
    assert rx.feed(alert(4, alert_id=2, attempt=1), 11.0) == []  # alert 2 already reported
    assert rx.stats["accepted"] == 1


def test_first_sight_of_a_retransmission_reports_the_alert() -> None:
    rx = receiver()
    events = rx.feed(alert(40, alert_id=37, attempt=3), 0.0)
    assert events[0]["event"] == "alert" and events[0]["alert_id"] == 37
    assert events[0]["attempt"] == 3


def test_late_alert_is_flagged_not_dropped() -> None:
    rx = receiver()
    assert rx.feed(alert(20), 0.0)[0]["late"] is False
    # Alert 12's frames were missed; one of its retries arrives after alert 20's.
    events = rx.feed(alert(21, alert_id=12, attempt=4), 5.0)
    assert events[0]["event"] == "alert" and events[0]["late"] is True


def test_counters_near_wrap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="counter"):
        rid(KEYS_A.id, MAX_COUNTER + 1)
    db = tmp_path / "rx.sqlite"
    receiver(db).close()
    with sqlite3.connect(db) as conn:  # a unit that has used almost every counter
        conn.execute(
            "INSERT INTO unit_state (unit, hwm, newest_alert, last_seen, supervised)"
            " VALUES (?, ?, ?, ?, ?)",
            (UNIT_A.hex(), MAX_COUNTER - 5, -1, 1.0, 1),
        )
    rx = receiver(db)
    assert rx.feed(encode(KEYS_A, Frame(Kind.HEARTBEAT, MAX_COUNTER - 1)), 2.0)
    assert rx.feed(encode(KEYS_A, Frame(Kind.HEARTBEAT, MAX_COUNTER)), 3.0)
    assert rx.feed(encode(KEYS_A, Frame(Kind.HEARTBEAT, MAX_COUNTER - 3)), 4.0) == []


def test_privacy_no_constant_bytes_and_no_repeated_identifiers() -> None:
    for keys in (KEYS_A, KEYS_B):
        frames = []
        for counter in range(3000):
            kind = [Kind.HEARTBEAT, Kind.ALERT, Kind.ALERT_RETRANSMISSION, Kind.TEST_PRESS][
                counter % 4
            ]
            frames.append(encode(keys, Frame(kind, counter, counter // 8, counter % 5, 70)))
        assert {len(f) for f in frames} == {AD_LENGTH}
        assert all(f[:2] == AD_HEADER for f in frames)  # AD length and type only
        values = defaultdict(set)
        for f in frames:
            for i in range(2, AD_LENGTH):
                values[i].add(f[i])
        constant = [i for i in range(2, AD_LENGTH) if len(values[i]) == 1]
        assert constant == []
        rids = [f[2:10] for f in frames]
        assert len(set(rids)) == len(rids)


def test_downgrade_rejected() -> None:
    rx = receiver()

    def heartbeat(version: int, counter: int) -> bytes:
        # A v1 frame had the counter where v2 has the unit clock.
        plain = bytes([version << 4 | Kind.HEARTBEAT]) + counter.to_bytes(4, "little") + bytes(8)
        return seal(KEYS_A, counter, plain)

    others = [v for v in range(16) if v != VERSION]
    for counter, version in enumerate(others, 1):
        assert rx.feed(heartbeat(version, counter), 0.0) == []
    assert rx.stats == {"rejected_version": len(others)}
    assert rx.feed(heartbeat(VERSION, 1), 1.0)[0]["event"] == "heartbeat"


def test_foreign_key_frames_are_rejected() -> None:
    stranger = derive_keys(b"another registry secret", UNIT_A)
    rx = receiver()
    assert rx.feed(encode(stranger, Frame(Kind.ALERT, 1, 1)), 0.0) == []
    assert rx.stats["rejected_unknown"] == 1


def test_proof_of_keys_vectors_and_rfc_4493() -> None:
    vectors = json.loads((REPO / "tests" / "vectors" / "frames.json").read_text())
    for v in vectors["cmac"]:  # the published CMAC vectors, with cryptography's CMAC
        mac = cmac.CMAC(algorithms.AES(bytes.fromhex(v["key"])))
        mac.update(bytes.fromhex(v["message"]))
        assert mac.finalize().hex() == v["mac"]
    for unit in vectors["units"]:
        keys = derive_keys(SECRET, bytes.fromhex(unit["unit_id"]))
        assert proof_key(keys).hex() == unit["proof"]["key"]
        for c in unit["proof"]["challenges"]:
            mac = proof_mac(
                keys, bytes.fromhex(unit["unit_id"]), c["generation"], bytes.fromhex(c["nonce"])
            )
            assert mac.hex() == c["mac"]
    # Another generation, unit or nonce gives another MAC.
    base = proof_mac(KEYS_A, UNIT_A, 1, bytes(16))
    assert proof_mac(KEYS_A, UNIT_A, 2, bytes(16)) != base
    assert proof_mac(KEYS_A, UNIT_B, 1, bytes(16)) != base
    assert proof_mac(KEYS_B, UNIT_A, 1, bytes(16)) != base
    assert proof_key(KEYS_A) not in (KEYS_A.enc, KEYS_A.id, KEYS_A.ack)


def test_a_test_press_is_reported_once_as_a_test_press_never_an_alert() -> None:
    rx = receiver()
    test_id = 6
    events = rx.feed(encode(KEYS_A, Frame(Kind.TEST_PRESS, 7, test_id, 0, 90)), 1.0)
    assert [e["event"] for e in events] == ["test_press"] and events[0]["test_id"] == test_id
    assert rx.last_test == (UNIT_A.hex(), test_id) and rx.last_alert is None
    # Its retries: counted, not reported again, still to be acknowledged.
    assert rx.feed(encode(KEYS_A, Frame(Kind.TEST_PRESS, 9, test_id, 1, 90)), 6.0) == []
    assert rx.stats["test_retransmissions"] == 1 and rx.last_test == (UNIT_A.hex(), test_id)
    assert rx.ack_ad(UNIT_A.hex(), test_id) == ack_ad(KEYS_A.ack, test_id)
    # An alert after it is an alert, and the test id does not make it late.
    (alert,) = rx.feed(encode(KEYS_A, Frame(Kind.ALERT, 12, 11, 0, 90)), 9.0)
    assert alert["event"] == "alert" and alert["late"] is False and rx.last_test is None


def vector_units() -> list[dict[str, object]]:
    units: list[dict[str, object]] = json.loads(
        (REPO / "tests" / "vectors" / "frames.json").read_text()
    )["units"]
    return units


def test_every_rule_of_the_plaintext_is_enforced_on_frames_with_the_right_key() -> None:
    reasons = set()
    for unit in vector_units():
        keys = derive_keys(SECRET, bytes.fromhex(str(unit["unit_id"])))
        for v in unit["rejected"]:  # type: ignore[attr-defined]
            ad = bytes.fromhex(v["ad"])
            assert seal(keys, v["counter"], bytes.fromhex(v["plaintext"])) == ad
            with pytest.raises(FrameError) as err:
                decode(keys.enc, v["counter"], ad)
            assert err.value.reason == v["reason"], v
            reasons.add(v["reason"])
    rules = {"version", "kind", "reserved", "flags", "battery", "alert_id", "attempt"}
    assert reasons == rules


def conforming_frames() -> list[Frame]:
    """Frames at the edges of what sections 3.4 and 3.5 allow."""
    c = 0x200
    return [
        Frame(Kind.HEARTBEAT, c, battery_pct=0),
        Frame(Kind.HEARTBEAT, c, battery_pct=BATTERY_MAX_PCT),
        Frame(Kind.HEARTBEAT, c, battery_pct=BATTERY_UNKNOWN),
        Frame(Kind.LOW_BATTERY, c, flags=FLAGS_DEFINED),
        Frame(Kind.HEARTBEAT, c, attempt=5),  # a cover sequence's last retry
        Frame(Kind.LOW_BATTERY, c, attempt=1),
        Frame(Kind.FAULT, c, flags=FLAGS_DEFINED),
        Frame(Kind.ALERT, c, alert_id=c - 1),
        Frame(Kind.ALERT, c, alert_id=1),
        Frame(Kind.ALERT_RETRANSMISSION, c, alert_id=c - 1, attempt=1),
        Frame(Kind.ALERT_RETRANSMISSION, c, alert_id=c - 1, attempt=300),  # saturates
        Frame(Kind.TEST_PRESS, c, alert_id=c - 1),
        Frame(Kind.TEST_PRESS, c, alert_id=c - 1, attempt=4),
    ]


@pytest.mark.parametrize("frame", conforming_frames(), ids=repr)
def test_frames_at_the_edges_of_the_rules_are_accepted(frame: Frame) -> None:
    got = decode(KEYS_A.enc, frame.counter, encode(KEYS_A, frame))
    assert got == Frame(
        frame.kind,
        frame.counter,
        frame.alert_id,
        min(frame.attempt, 255),
        frame.battery_pct,
        frame.flags,
    )
