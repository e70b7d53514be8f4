"""When the receiver's acknowledgement is on the air (amrkit.ack_schedule): the
schedule against the unit's config, decoys against real tags, and decoys
against the real firmware on the twin."""

from __future__ import annotations

import random
from pathlib import Path

from amrkit.ack_schedule import HOLD, MARGIN_S, WINDOW, AckPolicy, AckSchedule
from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.protocol import ACK_AD_HEADER, Frame, Kind, KnownUnit, ack_ad, derive_keys, encode
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, trace
from amrkit.twin.unit import VirtualUnit

DEFAULTS = firmware_module("config").DEFAULTS
RETRY_S = firmware_module("alert").RETRY_ADVERTISE_MS / 1000


def known(name: bytes) -> KnownUnit:
    unit_id = name.ljust(8, b"\0")
    return KnownUnit(unit_id.hex(), derive_keys(b"a test registry secret", unit_id))


def test_the_window_lasts_until_the_first_retry_is_over_from_anywhere_in_the_burst() -> None:
    burst_s = DEFAULTS["burst_ms"] / 1000
    retry_ends = burst_s + DEFAULTS["retry_first_s"] + RETRY_S  # from the burst's start
    for tenth in range(int(burst_s * 10) + 1):
        heard = tenth / 10  # the first frame heard this far into the burst
        assert heard + WINDOW.first_s >= retry_ends + MARGIN_S
    assert WINDOW.again_s == RETRY_S + MARGIN_S
    # A unit provisioned with a longer burst gets a longer window.
    longer = AckPolicy.window(dict(DEFAULTS, burst_ms=DEFAULTS["burst_ms"] + 4000))
    assert longer.first_s == WINDOW.first_s + 4
    assert WINDOW.first_s < HOLD.first_s


def _feed(
    rx: Receiver, schedule: AckSchedule, unit: KnownUnit, frames: list[tuple[float, Frame]]
) -> dict[bytes, float]:
    """Each frame heard at its time; what the schedule holds on the air, until when."""
    for t, frame in frames:
        schedule.heard(rx, rx.feed(encode(unit.keys, frame), t), t)
    return dict(schedule.until)


def sequence(kind: Kind, retry_kind: Kind, start: float) -> list[tuple[float, Frame]]:
    """A burst heard at `start`, then two retries, on the default back-off."""
    first = start + DEFAULTS["burst_ms"] / 1000 + DEFAULTS["retry_first_s"]
    second = first + RETRY_S + 2 * DEFAULTS["retry_first_s"]
    alert_id = 7 if kind == Kind.ALERT else 0  # reserved before its first frame's counter
    return [
        (start, Frame(kind, 8, alert_id, 0)),
        (first, Frame(retry_kind, 9, alert_id, 1)),
        (second, Frame(retry_kind, 10, alert_id, 2)),
    ]


def test_a_routine_sequence_gets_a_decoy_on_the_alerts_schedule() -> None:
    alerting, routine = known(b"alert"), known(b"cover")
    rx = Receiver([alerting, routine])
    alert = sequence(Kind.ALERT, Kind.ALERT_RETRANSMISSION, 100.0)
    cover = sequence(Kind.HEARTBEAT, Kind.HEARTBEAT, 100.0)
    # Frame by frame, the alert's tag and the cover sequence's decoy are on
    # the air until the same times, and look alike.
    for n in range(1, len(alert) + 1):
        real = _feed(rx, AckSchedule(), alerting, alert[:n])
        decoy = _feed(Receiver([routine]), AckSchedule(), routine, cover[:n])
        assert list(real) == [ack_ad(alerting.keys.ack, 7)]
        assert len(decoy) == 1 and list(real.values()) == list(decoy.values())
        (tag,) = decoy
        assert len(tag) == len(real.popitem()[0]) and tag.startswith(ACK_AD_HEADER)
    # One decoy for a sequence and its retries; a new one for the next.
    schedule = AckSchedule()
    rx = Receiver([routine])
    _feed(rx, schedule, routine, cover)
    assert len(schedule.until) == 1
    later = sequence(Kind.HEARTBEAT, Kind.HEARTBEAT, 500.0)
    renumbered = [(t, Frame(f.kind, f.counter + 3, 0, f.attempt)) for t, f in later]
    _feed(rx, schedule, routine, renumbered)
    assert len(schedule.until) == 2
    # Off the air once its last hold is over.
    assert schedule.due(renumbered[-1][0] + WINDOW.again_s) == []


def test_without_decoys_routine_frames_get_nothing_and_hold_keeps_two_minutes() -> None:
    unit = known(b"cover")
    assert _feed(Receiver([unit]), AckSchedule(decoys=False), unit, sequence(
        Kind.HEARTBEAT, Kind.HEARTBEAT, 0.0)) == {}  # fmt: skip
    alert = sequence(Kind.ALERT, Kind.ALERT_RETRANSMISSION, 0.0)
    held = _feed(Receiver([unit]), AckSchedule(HOLD), unit, alert)
    assert list(held.values()) == [alert[-1][0] + HOLD.again_s]


def test_decoys_never_acknowledge_an_alert_and_cover_sequences_do_not_listen(
    tmp_path: Path,
) -> None:
    """The real firmware on the twin, with cover traffic on: every frame it
    sends is answered on the acknowledgement's schedule with a decoy (a
    random tag of the same shape), never with the alert's own tag."""
    unit = VirtualUnit(tmp_path / "unit", load_board())
    rx = Receiver([provision(unit, dict(DEFAULTS, cover_per_day=48))])
    rng = random.Random(5)
    unit.power_on()
    press_at = 6 * 3600_000  # a quarter day of cover sequences first
    unit.press(press_at, trace(Rng(3), [(0, DEFAULTS["hold_ms"] + 500)]))
    decoys: list[tuple[int, int]] = []
    while unit.clock_ms < press_at + 120_000:
        wake, _ = unit.next_wake()
        assert wake is not None
        for boot in unit.run_until(wake):
            for sent in (e for e in boot.events if e["kind"] == "advertise"):
                events = rx.feed(bytes.fromhex(sent["data"]), sent["t"] / 1000)
                frame = next((e for e in events if "attempt" in e), None)
                if frame is not None:
                    hold = WINDOW.first_s if frame["attempt"] == 0 else WINDOW.again_s
                    span = (sent["t"], sent["t"] + round(hold * 1000))
                    unit.air(ACK_AD_HEADER + rng.randbytes(8), *span)
                    decoys.append(span)
    lines = [line for b in unit.boots for line in b.lines]
    assert not any("acknowledged" in line for line in lines)
    # The burst and the retries that went on, decoys or not.
    assert sum(1 for line in lines if "alert" in line and "attempt" in line) >= 4
    cover_boots = [b for b in unit.boots if b.started_ms < press_at]
    assert sum(1 for b in cover_boots for e in b.events if e["kind"] == "advertise") > 2
    # No alert pending, no scan: a decoy cannot reach a cover sequence.
    assert not any(e["kind"] == "scan" for b in cover_boots for e in b.events)
    # The alert's retries did scan while decoys were on the air.
    scans = [e["t"] for b in unit.boots for e in b.events if e["kind"] == "scan"]
    assert any(start <= t < end for t in scans for start, end in decoys)
