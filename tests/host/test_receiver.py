"""The reference receiver: hostile input, supervision, resynchronisation and
exactly one verified alert from a real press on a virtual unit."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from amrkit.boards import load_board
from amrkit.contract import TIMER_WAKE
from amrkit.listen_text import describe
from amrkit.paths import firmware_module
from amrkit.protocol import Frame, Kind, KnownUnit, ack_ad, derive_keys, encode
from amrkit.receiver import (
    CLOCK_DRIFT,
    DEEP_WINDOW,
    LATENCY_ALLOWANCE_S,
    WINDOW,
    Receiver,
    ad_from_manufacturer_data,
)
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import Boot, VirtualUnit
from amrkit.unit.wired import command_source

SECRET = b"receiver test registry secret!!!"
UNIT = bytes.fromhex("1111222233334444")
KEYS = derive_keys(SECRET, UNIT)
HEARTBEAT_S = 600


def receiver() -> Receiver:
    return Receiver([KnownUnit(UNIT.hex(), KEYS, HEARTBEAT_S)])


def heartbeat(counter: int) -> bytes:
    return encode(KEYS, Frame(Kind.HEARTBEAT, counter, battery_pct=77))


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_bad_input_counted_not_crashing(data: bytes) -> None:
    rx = receiver()
    assert rx.feed(data, 0.0) == []
    assert sum(rx.stats.values()) == 1 and rx.stats["accepted"] == 0


def test_truncated_and_oversized_frames_are_counted() -> None:
    rx = receiver()
    good = heartbeat(0)
    assert rx.feed(good[:-1], 0.0) == [] and rx.feed(good + b"\x00", 0.0) == []
    assert rx.stats["rejected_length"] == 2
    assert rx.feed(good, 0.0)[0]["event"] == "heartbeat"


def test_supervision_lost() -> None:
    rx = receiver()
    rx.feed(heartbeat(0), 0.0)
    limit = HEARTBEAT_S * 2.5
    assert rx.check_supervision(limit - 1) == []
    lost = rx.check_supervision(limit + 1)
    assert [e["event"] for e in lost] == ["supervision_lost"]
    assert rx.check_supervision(limit + 100) == []  # reported once
    back = rx.feed(heartbeat(1), limit + 200)
    assert [e["event"] for e in back] == ["supervision_restored", "heartbeat"]


def test_unit_never_heard_is_supervised_from_start() -> None:
    rx = receiver()
    rx.watch(100.0)
    assert [e["event"] for e in rx.check_supervision(100.0 + HEARTBEAT_S * 3)] == [
        "supervision_lost"
    ]


def test_resynchronises_after_long_absence_with_deep_window() -> None:
    rx = receiver()
    rx.feed(heartbeat(0), 0.0)
    far = WINDOW + 500  # the unit kept sending while the receiver was away
    assert far < DEEP_WINDOW
    assert rx.feed(heartbeat(far), 10.0) == []
    assert rx.stats["rejected_unknown"] == 1
    rx.check_supervision(HEARTBEAT_S * 3)
    assert rx.feed(heartbeat(far + 1), HEARTBEAT_S * 3 + 1)[-1]["event"] == "heartbeat"
    assert rx.feed(heartbeat(far), HEARTBEAT_S * 3 + 2) == []  # older than the mark now


def test_resolution_is_a_table_lookup_for_many_units() -> None:
    units = [KnownUnit(f"{i:016x}", derive_keys(SECRET, i.to_bytes(8, "big"))) for i in range(50)]
    rx = Receiver(units, window=32)
    for i, u in enumerate(units):
        ad = encode(u.keys, Frame(Kind.HEARTBEAT, i % 30))
        assert rx.feed(ad, float(i))[0]["unit"] == u.unit
    assert rx.stats["accepted"] == 50


def test_manufacturer_data_view_rebuilds_the_frame() -> None:
    ad = heartbeat(5)
    company = int.from_bytes(ad[2:4], "little")
    assert ad_from_manufacturer_data(company, ad[4:]) == ad


def hear_all(rx: Receiver, unit: VirtualUnit) -> list[dict[str, object]]:
    """Feed everything the unit advertised to the receiver; its events."""
    return [
        e
        for b in unit.boots
        for ad in b.events
        if ad["kind"] == "advertise"
        for e in rx.feed(bytes.fromhex(ad["data"]), ad["t"] / 1000)
    ]


def test_a_press_on_a_virtual_unit_gives_exactly_one_verified_alert(tmp_path: Path) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    rx = Receiver([provision(unit)])
    unit.power_on()
    rng = Rng(12)
    unit.press(3_000, trace(rng, taps(rng, 3)))
    unit.run_until(5 * 60_000)
    events = hear_all(rx, unit)
    assert [e["event"] for e in events] == ["alert"]
    assert (
        rx.stats["retransmissions"] >= 5 and rx.stats["accepted"] == rx.stats["retransmissions"] + 1
    )
    assert set(rx.stats) == {"accepted", "retransmissions"}


def test_acknowledged_alert_stops_its_retries(tmp_path: Path) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    known = provision(unit)
    rx = Receiver([known])
    acked: list[int] = []

    def nearby_phone(boot: Boot) -> None:
        """Verify what the unit sent; advertise an ack for each new alert."""
        for ad in (e for e in boot.events if e["kind"] == "advertise"):
            for event in rx.feed(bytes.fromhex(ad["data"]), ad["t"] / 1000):
                if event["event"] == "alert":
                    acked.append(event["alert_id"])
                    unit.air(
                        ack_ad(known.keys.ack, event["alert_id"]), ad["t"] + 200, ad["t"] + 30_000
                    )

    unit.power_on()
    rng = Rng(21)
    unit.press(3_000, trace(rng, taps(rng, 3)))
    unit.run_until(10 * 60_000, on_boot=nearby_phone)
    assert len(acked) == 1
    log = [line for b in unit.boots for line in b.lines]
    assert any(f"alert {acked[0]} acknowledged" in line for line in log)
    # After the ack: no more frames for the alert, and it is gone from flash.
    assert rx.stats["retransmissions"] == 1
    store = firmware_module("store")
    records = [
        store.unpack_record(bytes.fromhex(slot["blob"]), firmware_module("records").STATE[1])
        for key, slot in unit.nvs()["amr"].items()
        if key.startswith("s")
    ]
    newest = max((r for r in records if r), key=lambda r: r[0])
    state = firmware_module("state").decode_state(newest[1])
    assert state.pending == []
    # The phone answers after the burst, so the unit hears the ack during
    # its first retry, and never wakes for the alert again.
    assert sum(1 for b in unit.boots if b.wake_reason == TIMER_WAKE) == 1


def frame_times(unit: VirtualUnit) -> list[int]:
    return [e["t"] for b in unit.boots for e in b.events if e["kind"] == "advertise"]


def test_cover_traffic_mimics_alert_timing_and_carries_heartbeats(tmp_path: Path) -> None:
    config = dict(firmware_module("config").DEFAULTS, cover_per_day=24)
    unit = VirtualUnit(tmp_path / "cover", load_board())
    rx = Receiver([provision(unit, config)])
    unit.power_on()
    unit.run_until(24 * 3600_000)
    events = hear_all(rx, unit)
    assert {e["event"] for e in events} == {"heartbeat"}
    times = frame_times(unit)
    beats = 24 * 3600 // config["heartbeat_s"]
    assert len(times) > beats + 2  # the heartbeats and at least one cover sequence
    # The first gap of a cover sequence (burst, back-off, first retry) is an
    # alert's to the millisecond.
    alarm = VirtualUnit(tmp_path / "alert", load_board())
    provision(alarm)
    alarm.power_on()
    alarm.press(1_000, trace(Rng(3), [(0, 2000)]))
    alarm.run_until(30_000)
    alert_gap = frame_times(alarm)[1] - frame_times(alarm)[0]
    # Gaps inside a sequence are under 20 s (the burst, 10.8 s, and the
    # first back-off); heartbeats are an hour apart.
    cover_gaps = [b - a for a, b in itertools.pairwise(times) if b - a < 20_000]
    assert cover_gaps and alert_gap in cover_gaps


VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "frames.json"


def test_frames_sealed_with_the_right_key_that_break_a_rule_are_counted_not_taken() -> None:
    vectors = json.loads(VECTORS.read_text())
    unit = vectors["units"][0]
    known = KnownUnit(
        unit["unit_id"],
        derive_keys(bytes.fromhex(vectors["registry_secret"]), bytes.fromhex(unit["unit_id"])),
    )
    for v in unit["rejected"]:
        rx = Receiver([known], window=v["counter"] + 1)
        assert rx.feed(bytes.fromhex(v["ad"]), 1.0) == []
        assert rx.stats == {f"rejected_{v['reason']}": 1}, v
        # The mark did not move: a frame just below the rejected one is taken.
        ad = encode(known.keys, Frame(Kind.HEARTBEAT, v["counter"] - 1))
        assert [e["event"] for e in rx.feed(ad, 2.0)] == ["heartbeat"]


def advertised(boots: list[Boot]) -> list[dict[str, Any]]:
    return [e for b in boots for e in b.events if e["kind"] == "advertise"]


def test_the_receiver_takes_every_frame_a_unit_sends(tmp_path: Path) -> None:
    """A day of a unit's life with everything it can say: a test press at the
    store, cover traffic, alerts (one acknowledged at once, one after ten
    minutes of retries), a low cell, then one below the battery floor. No
    frame is rejected."""
    defaults = firmware_module("config").DEFAULTS
    unit = VirtualUnit(tmp_path / "unit", load_board())
    # Cover sequences at random times, often enough that some fall in each part.
    known = provision(unit, {**defaults, "cover_per_day": 48})
    rx = Receiver([known])
    events: list[dict[str, Any]] = []
    ack_next = [True]

    def phone(boot: Boot) -> None:
        for ad in advertised([boot]):
            events.extend(rx.feed(bytes.fromhex(ad["data"]), ad["t"] / 1000))
            heard = rx.last_alert or rx.last_test
            if heard is not None and ack_next[0]:
                unit.air(rx.ack_ad(*heard), ad["t"] + 200, ad["t"] + 120_000)

    unit.power_on()
    unit.wired(command_source("test_mode", (120).to_bytes(2, "little")))
    rng = Rng(5)
    unit.press(2_000, trace(rng, taps(rng, 3)))
    unit.run_until(3600_000, on_boot=phone)
    unit.press(unit.clock_ms + 1_000, trace(rng, taps(rng, 3)))
    unit.run_until(unit.clock_ms + 3600_000, on_boot=phone)
    ack_next[0] = False  # the next alert goes unanswered for ten minutes
    unit.press(unit.clock_ms + 1_000, trace(rng, taps(rng, 3)))
    unit.run_until(unit.clock_ms + 600_000, on_boot=phone)
    ack_next[0] = True
    unit.run_until(defaults["heartbeat_s"] * 1000 + 60_000, on_boot=phone)  # a heartbeat
    between = (defaults["battery_floor_mv"] + defaults["low_battery_mv"]) // 2
    # Each part lasts the longest a heartbeat may be drawn apart (a fifth
    # more than heartbeat_s), so one falls in it whatever the draw.
    longest_ms = defaults["heartbeat_s"] * 1000 * 6 // 5 + 60_000
    unit.set_battery(between)
    unit.run_until(unit.clock_ms + longest_ms, on_boot=phone)
    unit.set_battery(defaults["battery_floor_mv"] - 20)
    end = unit.clock_ms + longest_ms
    while unit.clock_ms < end and not any(e.get("below_floor") for e in events):
        unit.run_until(unit.clock_ms + 600_000, on_boot=phone)

    frames = advertised(unit.boots)
    assert not [k for k in rx.stats if k.startswith("rejected")], rx.stats
    assert rx.stats["accepted"] == len(frames)
    kinds = {e["event"] for e in events}
    assert kinds == {"test_press", "alert", "heartbeat", "low_battery"}
    assert rx.stats["retransmissions"] > 1 and rx.stats["test_retransmissions"] >= 1
    assert any(e["event"] == "heartbeat" and e["attempt"] > 0 for e in events)  # cover
    assert any(e["low_battery"] and e["below_floor"] for e in events)


# -- held-back frames: the unit's clock ----------------------------------------

DAY_S = 86400


def frame_at(counter: int, clock_s: int, kind: Kind = Kind.HEARTBEAT, alert_id: int = 0) -> bytes:
    return encode(KEYS, Frame(kind, counter, alert_id, clock_s=clock_s))


def test_the_first_frame_of_a_unit_cannot_be_judged() -> None:
    (event,) = receiver().feed(frame_at(2, 5000, Kind.ALERT, 1), DAY_S)
    assert event["event"] == "alert" and event["late"] is False
    assert event["delay_s"] is None and event["clock_restarted"] is False


def test_a_frame_is_late_when_its_delay_exceeds_latency_and_drift_allowances() -> None:
    since_s = 10 * 3600  # unit clock since the anchor
    allowed = LATENCY_ALLOWANCE_S + CLOCK_DRIFT * since_s
    for extra, late in ((allowed - 1, False), (allowed + 1, True)):
        rx = receiver()
        assert rx.feed(frame_at(0, 1000), 0.0)[0]["delay_s"] is None  # the anchor
        (event,) = rx.feed(frame_at(2, 1000 + since_s, Kind.ALERT, 1), since_s + extra)
        assert event["late"] is late and event["delay_s"] == round(extra)
        assert event["clock_restarted"] is False


def test_a_late_frame_leaves_the_anchor_and_a_restarted_clock_moves_it() -> None:
    rx = receiver()
    rx.feed(frame_at(0, 7200), 100.0)
    (late,) = rx.feed(frame_at(2, 7260, Kind.TEST_PRESS, 1), 100.0 + 60 + DAY_S)
    assert late["event"] == "test_press" and late["late"] is True
    assert late["delay_s"] == DAY_S
    # A frame made after the release, on time by the old anchor: not late.
    (beat,) = rx.feed(frame_at(3, 7260 + DAY_S), 100.0 + 60 + DAY_S)
    assert beat["delay_s"] == 0
    # The clock behind the anchor under a higher counter: it started again.
    (restart,) = rx.feed(frame_at(70, 30), 200.0 + DAY_S)
    assert restart["clock_restarted"] is True and restart["delay_s"] is None
    (alert,) = rx.feed(frame_at(71, 90, Kind.ALERT, 70), 260.0 + DAY_S)
    assert alert["late"] is False and alert["delay_s"] <= 1


def test_the_anchor_survives_a_receiver_restart_and_an_older_state_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rx.sqlite"
    with sqlite3.connect(db) as conn:  # a state file from before the clock
        conn.execute(
            "CREATE TABLE unit_state (unit TEXT PRIMARY KEY, hwm INTEGER NOT NULL,"
            " newest_alert INTEGER NOT NULL, last_seen REAL, supervised INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO unit_state VALUES (?, 4, -1, 0.0, 1)", (UNIT.hex(),))
    rx = Receiver([KnownUnit(UNIT.hex(), KEYS, HEARTBEAT_S)], db)
    assert rx.feed(frame_at(4, 100), 1.0) == []  # the mark was kept
    assert rx.feed(frame_at(5, 100), 1.0)[0]["delay_s"] is None
    rx.close()
    rx = Receiver([KnownUnit(UNIT.hex(), KEYS, HEARTBEAT_S)], db)
    (event,) = rx.feed(frame_at(7, 160, Kind.ALERT, 6), 61.0 + DAY_S)
    assert event["late"] is True and event["delay_s"] == DAY_S


def frames_from(boots: list[Boot], offset_s: float = 0.0) -> list[tuple[bytes, float]]:
    """What the boots advertised: (payload, receiver time)."""
    return [(bytes.fromhex(ad["data"]), ad["t"] / 1000 + offset_s) for ad in advertised(boots)]


def test_an_alert_held_back_for_a_day_is_late_and_one_heard_at_once_is_not(
    tmp_path: Path,
) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    known = provision(unit)
    unit.power_on()
    heartbeat_ms = firmware_module("config").DEFAULTS["heartbeat_s"] * 1000
    before = unit.run_until(heartbeat_ms + 60_000)  # its first heartbeat: the anchor
    rng = Rng(7)
    unit.press(unit.clock_ms + 1_000, trace(rng, taps(rng, 3)))
    alert_boots = unit.run_until(unit.clock_ms + 30_000)  # the burst and a retry
    for held_s, late in ((0, False), (DAY_S, True)):
        rx = Receiver([known])
        heard = [e for ad, t in frames_from(before) for e in rx.feed(ad, t)]
        assert [e["event"] for e in heard] == ["heartbeat"]
        # Someone records the alert's frames and releases them held_s later.
        (alert,) = [e for ad, t in frames_from(alert_boots, held_s) for e in rx.feed(ad, t)]
        assert alert["event"] == "alert" and alert["late"] is late
        # The unit's clock counts whole seconds: the estimate is within one.
        assert abs(alert["delay_s"] - held_s) <= 1, alert


def test_a_power_cycled_unit_is_anchored_again_not_flagged(tmp_path: Path) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    rx = Receiver([provision(unit)])
    heartbeat_ms = firmware_module("config").DEFAULTS["heartbeat_s"] * 1000
    unit.power_on()
    # Two heartbeats: the first a whole interval after the power-on, the
    # second drawn within a fifth of one after it (the third is later still).
    before = frames_from(unit.run_until(2 * heartbeat_ms + heartbeat_ms // 5 + 60_000))
    events = [e for ad, t in before for e in rx.feed(ad, t)]
    # The unit's clock counts whole seconds: a delay within one is on time.
    assert events[0]["delay_s"] is None and len(events) == 2 and events[1]["delay_s"] <= 1
    # The cell is out for an hour; the chip's RTC starts again from 0 at the
    # next power-on (the twin's does too), while the receiver's clock ran on.
    unit.power_off(unit.clock_ms)
    unit.clock_ms += 3600_000
    start = len(unit.boots)
    unit.power_on()
    rng = Rng(9)
    unit.press(unit.clock_ms + heartbeat_ms + 60_000, trace(rng, taps(rng, 3)))
    unit.run_until(unit.clock_ms + heartbeat_ms + 90_000)
    events = [e for ad, t in frames_from(unit.boots[start:]) for e in rx.feed(ad, t)]
    first, *rest = events
    assert first["clock_restarted"] is True and first["delay_s"] is None
    alert = next(e for e in rest if e["event"] == "alert")
    assert alert["late"] is False and alert["delay_s"] <= 1
    assert not any(e["clock_restarted"] for e in rest)


def test_a_person_reading_the_listener_sees_how_late_an_alert_is() -> None:
    rx = receiver()
    rx.feed(frame_at(0, 7200), 100.0)
    (event,) = rx.feed(frame_at(2, 7260, Kind.ALERT, 1), 160.0 + DAY_S)
    assert "ALERT 1 (late: sent about 24.0 h before it was heard)" in describe(event, {})


def test_a_test_press_is_reported_once_across_a_receiver_restart(tmp_path: Path) -> None:
    """As an alert is: the store's check sees one test press per id, even
    when the receiver restarts between its first frame and a retry."""
    db = tmp_path / "rx.sqlite"
    units = [KnownUnit(UNIT.hex(), KEYS, HEARTBEAT_S)]
    rx = Receiver(units, db)
    (first,) = rx.feed(frame_at(3, 100, Kind.TEST_PRESS, 2), 1.0)
    assert first["event"] == "test_press" and first["test_id"] == 2
    rx.close()
    rx = Receiver(units, db)
    assert rx.feed(frame_at(4, 110, Kind.TEST_PRESS, 2), 11.0) == []
    assert rx.stats["test_retransmissions"] == 1
    (other,) = rx.feed(frame_at(6, 130, Kind.TEST_PRESS, 5), 31.0)
    assert other["test_id"] == 5
