"""Press storms: 50 presses in about 10 s on one twin unit (someone hammering
the button), and what the spec says they must raise.

The expected alarms come from the rules as docs/firmware.md states them,
written out here apart from the firmware's recogniser and applied to the
raw contact samples: closed for press_settle_ms is a press, dated from the
first edge of its bounce (at most 50 ms back); open for release_settle_ms
ends it; a press shorter than min_press_ms does not count. A hold of
hold_ms is an alarm; multi_count presses whose starts lie within
multi_window_ms are an alarm; after an alarm the count starts afresh.
(Taps this close together sometimes merge: a long glitch after a release
can leave the contact open for less than release_settle_ms before the
next tap, and then the two are one press.)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amrkit.boards import Board, load_board
from amrkit.paths import firmware_module
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Presses, Rng, Trace, trace
from amrkit.twin.unit import VirtualUnit

PRESSES = 50
TAP_MS = (60, 90)  # above min_press_ms and press_settle_ms plus any make bounce
GAP_MS = (110, 130)  # above release_settle_ms plus any break bounce
FIRST_MS = (220, 300)  # the press that wakes the unit is seen whole despite the boot
HOLD_MS = (1_600, 2_200)  # now and then a hold, past hold_ms
HOLD_CHANCE = 0.04
ALARM = re.compile(r"gesture: alarm")
RESERVED = re.compile(r"alert (\d+) reserved")


def storm(rng: random.Random) -> Presses:
    """(start ms, duration ms) of 50 presses, about 10 s of them."""
    presses: Presses = []
    t = 0
    for n in range(PRESSES):
        if n == 0:
            duration = rng.randint(*FIRST_MS)
        elif rng.random() < HOLD_CHANCE:
            duration = rng.randint(*HOLD_MS)
        else:
            duration = rng.randint(*TAP_MS)
        presses.append((t, duration))
        t += duration + rng.randint(*GAP_MS)
    return presses


MAX_BOUNCE_MS = 50  # a press is dated at most this far before it settled


def debounced(samples: Trace, cfg: dict[str, int]) -> Presses:
    """(start, duration) of the presses in raw samples, by the debounce rules."""
    presses: Presses = []
    # A closing edge well after the last sample ends the last open stretch.
    edges = [*samples, (samples[-1][0] + cfg["release_settle_ms"] + 1, True)]
    level, since = False, 0  # the contact's state, and since when
    burst = None  # first closing edge since the contact was last open long enough
    start = None  # the press in progress, dated
    for t, closed in edges:
        if closed == level:
            continue
        held = t - since
        if level and start is None and held >= cfg["press_settle_ms"]:
            start = max(burst if burst is not None else since, since - MAX_BOUNCE_MS)
        if not level and held >= cfg["release_settle_ms"]:
            if start is not None:
                presses.append((start, since - start))
                start = None
            burst = None
        if closed and burst is None:
            burst = t
        level, since = closed, t
    return presses


def expected_alarms(presses: Presses, cfg: dict[str, int]) -> int:
    """Alarms the gesture rules give for these (debounced) presses."""
    alarms = 0
    starts: list[int] = []
    count, window = cfg["multi_count"], cfg["multi_window_ms"]
    for start, duration in presses:
        if duration < cfg["min_press_ms"]:
            continue
        starts.append(start)
        presses_in_window = len(starts) >= count and starts[-1] - starts[-count] <= window
        if presses_in_window or duration >= cfg["hold_ms"]:
            alarms += 1
            starts = []
    return alarms


@dataclass
class StormReport:
    presses: Presses
    expected: int
    alarm_gestures: int = 0
    reserved: list[int] = field(default_factory=list)  # alert ids, as the unit logged them
    heard: set[int] = field(default_factory=set)  # alert ids the receiver verified

    def figures(self) -> dict[str, Any]:
        return {
            "span_ms": self.presses[-1][0] + self.presses[-1][1],
            "expected_alarms": self.expected,
            "alarm_gestures": self.alarm_gestures,
            "alerts_reserved": len(self.reserved),
            "alerts_heard": len(self.heard),
        }


def run_storm(directory: Path, seed: int, board: Board | None = None) -> StormReport:
    """One storm on a sleeping unit; every frame it sends goes to a receiver."""
    rng = random.Random(seed)
    presses = storm(rng)
    cfg = firmware_module("config").DEFAULTS
    samples = trace(Rng(seed), presses)
    report = StormReport(presses, expected_alarms(debounced(samples, cfg), cfg))
    unit = VirtualUnit(directory, board or load_board())
    known = provision(unit)
    unit.power_on()
    start = unit.clock_ms + 5_000
    unit.press(start, samples)
    # Long enough for every alarm's burst to have gone out, one after another.
    end = start + presses[-1][0] + report.expected * cfg["burst_ms"] + 60_000
    receiver = Receiver([known])
    for boot in unit.run_until(end):
        for line in boot.lines:
            report.alarm_gestures += bool(ALARM.search(line))
            reserved = RESERVED.search(line)
            if reserved:
                report.reserved.append(int(reserved.group(1)))
        for sent in boot.events:
            if sent["kind"] == "advertise" and not sent["connectable"]:
                for event in receiver.feed(bytes.fromhex(sent["data"]), sent["t"] / 1000):
                    if event["event"] == "alert":
                        report.heard.add(event["alert_id"])
    return report
