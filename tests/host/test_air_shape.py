"""What a scanner sees of a twin unit over the air: the timing of its
heartbeats, and the shape of its alert and cover sequences, from the frames
the firmware put on the twin's radio (amrkit.twin.receivers.spans)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.power.spec import radio_timing
from amrkit.protocol import AD_LENGTH, KnownUnit, decode, rid
from amrkit.receiver import SUPERVISION_FACTOR, Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.receivers import Span, acknowledge_alert, spans
from amrkit.twin.unit import VirtualUnit

CONFIG = firmware_module("config").DEFAULTS
BEAT_S = 60  # the shortest interval the config allows: many beats in little time
BEATS = 200


def frames(unit: VirtualUnit) -> list[Span]:
    return [s for boot in unit.boots for s in spans(boot)]


def test_heartbeat_intervals_vary_within_a_fifth_and_average_the_interval(
    tmp_path: Path,
) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    known = provision(unit, dict(CONFIG, heartbeat_s=BEAT_S))
    unit.power_on()
    beat = BEAT_S * 1000
    while len(frames(unit)) <= BEATS:
        unit.run_until(unit.clock_ms + beat)
    starts = [s.start_ms for s in frames(unit)]
    # Every frame is a heartbeat, one a wake.
    rx = Receiver([known])
    assert {
        e["event"] for s in frames(unit) for e in rx.feed(bytes.fromhex(s.data), s.start_ms / 1000)
    } == {"heartbeat"}
    intervals = [b - a for a, b in itertools.pairwise(starts)]
    # The firmware draws each gap when it sends a heartbeat, between the
    # wake and the frame; the next wake comes at the end of the gap.
    wakes = [(b.started_ms, spans(b)[0].start_ms) for b in unit.boots if spans(b)]
    lowest, highest = beat - beat // 5, beat + beat // 5
    for (wake, sent), (next_wake, _) in itertools.pairwise(wakes):
        assert lowest - (sent - wake) <= next_wake - sent <= highest
    # A lost heartbeat leaves two intervals of silence: still inside supervision.
    longest_pair = max(a + b for a, b in itertools.pairwise(intervals))
    assert longest_pair < SUPERVISION_FACTOR * beat
    # No interval marks the unit: they spread over the range (the draw has
    # 24 001 values; 200 draws repeat one in a handful of cases at most).
    assert len(set(intervals)) > len(intervals) - 10
    assert max(intervals) - min(intervals) > beat // 5
    # The mean is the configured interval (what the power model counts):
    # 200 uniform draws over +-12 s stray more than 6 s from it with a
    # probability below 1e-10 (Hoeffding's bound).
    mean = sum(intervals) / len(intervals)
    assert abs(mean - beat) < beat // 10


# -- alert and cover sequences ------------------------------------------------


@dataclass
class Window:
    """One frame as a scanner sees it: when its first copy came, how many
    copies, under which address, in what PDU and payload length."""

    start_ms: float
    copies: int
    interval_ms: float
    addr: str
    connectable: bool
    length: int
    attempt: int  # from the plaintext: only the receiver can read it


def windows(unit: VirtualUnit, known: KnownUnit) -> list[Window]:
    rids = {rid(known.keys.id, c): c for c in range(4096)}
    out = []
    for boot in unit.boots:
        adverts = {e["t"]: e for e in boot.events if e["kind"] == "advertise"}
        for s in spans(boot):
            ad = bytes.fromhex(s.data)
            frame = decode(known.keys.enc, rids[ad[2:10]], ad)
            event = adverts[s.start_ms]
            out.append(
                Window(
                    s.start_ms,
                    math.ceil((s.end_ms - s.start_ms) / s.interval_ms),
                    s.interval_ms,
                    event["addr"],
                    event["connectable"],
                    len(ad),
                    frame.attempt,
                )
            )
    return out


def chains(frames: list[Window]) -> list[list[Window]]:
    """Frames grouped into sequences by their attempt numbers (a burst is
    attempt 0; retry k follows retry k-1 by at most a window, the longest
    back-off and a boot), keeping only sequences no other comes near: where
    two overlap, retries due close together share a wake (alert.py
    _BATCH_MS), alert or cover alike, and either could take a retry."""
    longest = radio_timing().burst_ms + firmware_module("alert")._MAX_BACKOFF_MS + 1000
    found: list[list[Window]] = []
    for f in frames:
        fits = [c for c in found if c[-1].attempt == f.attempt - 1]
        if f.attempt == 0 or not fits:
            found.append([f])
        else:
            min(fits, key=lambda c: f.start_ms - c[-1].start_ms).append(f)

    def alone(chain: list[Window]) -> bool:
        lo, hi = chain[0].start_ms - longest, chain[-1].start_ms + longest
        return not any(
            lo <= w.start_ms <= hi for other in found if other is not chain for w in other
        )

    return [c for c in found if c[0].attempt == 0 and alone(c)]


def check_sequence(chain: list[Window]) -> None:
    """What a sequence looks like to a scanner, alert or cover: a burst of
    burst_ms, retries of RETRY_ADVERTISE_MS, the first retry exactly
    retry_first_s after the burst, later ones on the jittered back-off."""
    alert = firmware_module("alert")
    timing = radio_timing()
    interval = timing.adv_interval_ms
    assert chain[0].copies == math.ceil(timing.burst_ms / interval)
    assert all(w.copies == math.ceil(timing.retry_advertise_ms / interval) for w in chain[1:])
    assert all(w.interval_ms == interval and not w.connectable for w in chain)
    assert all(w.length == AD_LENGTH for w in chain)
    assert len({w.addr for w in chain}) == len(chain)  # a new address every frame
    starts = [w.start_ms for w in chain]
    # Each window starts one boot after its wake: the same for every retry.
    boot_ms = starts[1] - starts[0] - timing.burst_ms - timing.retry_first_ms
    assert 0 <= boot_ms < 1000
    first = int(timing.retry_first_ms)
    cap = min(CONFIG["retry_max_s"] * 1000, alert._MAX_BACKOFF_MS)
    for k in range(2, len(chain)):
        back_off = min(first << (k - 1), cap)
        wait = starts[k] - starts[k - 1] - timing.retry_advertise_ms - boot_ms
        assert back_off - (back_off >> 2) <= wait <= back_off, (k, wait)


def test_alert_and_cover_sequences_have_the_same_shape_on_the_air(tmp_path: Path) -> None:
    board = load_board()
    # Cover traffic at the firmware's highest rate; heartbeats a day apart,
    # so every frame of these hours belongs to a cover sequence.
    cover_unit = VirtualUnit(tmp_path / "cover", board)
    cover_known = provision(cover_unit, dict(CONFIG, heartbeat_s=86400, cover_per_day=48))
    cover_unit.power_on()
    cover_unit.run_until(12 * 3600_000)
    cover = chains(windows(cover_unit, cover_known))
    assert len(cover) >= 3
    for chain in cover:
        check_sequence(chain)
    # An alert nobody acknowledges, for 10 minutes.
    unacked = VirtualUnit(tmp_path / "unacked", board)
    unacked_known = provision(unacked)
    unacked.power_on()
    rng = Rng(3)
    unacked.press(1_000, trace(rng, taps(rng, 3)))
    unacked.run_until(10 * 60_000)
    (alert,) = chains(windows(unacked, unacked_known))
    assert len(alert) > 6  # past every short cover sequence
    check_sequence(alert)
    # An alert acknowledged at its first retry: burst and one retry, the
    # shortest cover sequence's shape.
    acked = VirtualUnit(tmp_path / "acked", board)
    acked_known = provision(acked)
    acked.power_on()
    acked.press(1_000, trace(rng, taps(rng, 3)))
    first = acked.run_until(1_001)
    assert acknowledge_alert(acked, first[-1], Receiver([acked_known]), acked_known.unit)
    acked.run_until(10 * 60_000)
    (short,) = chains(windows(acked, acked_known))
    assert len(short) == 2
    check_sequence(short)
    # Burst to first retry, start to start: the same to the millisecond.
    gap = short[1].start_ms - short[0].start_ms
    assert {c[1].start_ms - c[0].start_ms for c in cover} == {gap}
    assert alert[1].start_ms - alert[0].start_ms == gap
