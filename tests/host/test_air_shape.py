"""What a scanner sees of a twin unit over the air: the timing of its
heartbeats, and the shape of its alert and cover sequences, from the frames
the firmware put on the twin's radio (amrkit.twin.receivers.spans)."""

from __future__ import annotations

import itertools
from pathlib import Path

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.receiver import SUPERVISION_FACTOR, Receiver
from amrkit.twin.factory import provision
from amrkit.twin.receivers import Span, spans
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
    unit.run_until((BEATS + 1) * beat)
    starts = [s.start_ms for s in frames(unit)]
    assert len(starts) >= BEATS
    # Every frame is a heartbeat, one a wake.
    rx = Receiver([known])
    assert {
        e["event"] for s in frames(unit) for e in rx.feed(bytes.fromhex(s.data), s.start_ms / 1000)
    } == {"heartbeat"}
    intervals = [b - a for a, b in itertools.pairwise(starts)]
    # The firmware draws each gap from the moment it sends a heartbeat; the
    # next frame follows that wake by the boot (the same every wake, as the
    # first heartbeat after the cold boot shows).
    boot_ms = starts[0] - beat
    assert 0 <= boot_ms < 2000
    lowest, highest = beat - beat // 5, beat + beat // 5
    assert all(lowest <= i - boot_ms <= highest for i in intervals), (
        min(intervals),
        max(intervals),
    )
    # A lost heartbeat leaves two intervals of silence: still inside supervision.
    longest_pair = max(a + b for a, b in itertools.pairwise(intervals))
    assert longest_pair < SUPERVISION_FACTOR * beat
    # No interval marks the unit: they spread over the range (the draw has
    # 24 001 values; 199 draws repeat one in a handful of cases at most).
    assert len(set(intervals)) > len(intervals) - 10
    assert max(intervals) - min(intervals) > beat // 5
    # The mean is the configured interval (what the power model counts):
    # 199 uniform draws over +-12 s stray more than 6 s from it with a
    # probability below 1e-10 (Hoeffding's bound).
    mean = sum(intervals) / len(intervals) - boot_ms
    assert abs(mean - beat) < beat // 10
