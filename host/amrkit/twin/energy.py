"""Charge drawn by a virtual unit: time in each power state, from what its
boots recorded, times the board profile's currents (hardware/boards).

Each awake millisecond is counted once, in the most expensive state it was
in: connected to a host (service mode), the receiver on (scanning, for the
scan window's share of each interval), a frame on the air (advertising),
else the CPU alone. Boot is the profile's wake-to-app time."""

from __future__ import annotations

from dataclasses import dataclass, field

from amrkit.boards import Board
from amrkit.twin.unit import Boot

STATES = ("deep_sleep", "boot", "cpu_active", "advertising", "scanning", "connected")

Spans = list[tuple[int, int]]


@dataclass
class Energy:
    ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    uah: float = 0.0  # charge drawn from the cell, µAh

    def as_dict(self) -> dict[str, object]:
        return {"ms": dict(self.ms), "uah": round(self.uah, 3)}


def _spans(boot: Boot, opens: str, closes: tuple[str, ...], key: str | None = None) -> Spans:
    """Stretches between an `opens` event (with field `key` true, if given)
    and the next `closes` event, a re-open or the end of the boot."""
    spans: Spans = []
    start: int | None = None
    for event in boot.events:
        kind = event["kind"]
        is_open = kind == opens and (key is None or event.get(key))
        is_close = kind in closes or (kind == opens and key is not None and not event.get(key))
        if start is not None and (is_open or is_close):
            spans.append((start, event["t"]))
            start = None
        if is_open:
            start = event["t"]
    if start is not None:
        spans.append((start, boot.ended_ms))
    return spans


def _total(spans: Spans) -> int:
    return sum(b - a for a, b in spans)


def _overlap(a: Spans, b: Spans) -> int:
    return sum(max(0, min(y1, y2) - max(x1, x2)) for x1, y1 in a for x2, y2 in b)


def account(board: Board, boots: list[Boot], until_ms: int) -> Energy:
    """Charge for the unit's life up to until_ms (asleep between boots)."""
    energy = Energy()
    asleep_from = 0
    for boot in boots:
        energy.ms["deep_sleep"] += max(0, boot.started_ms - asleep_from)
        awake = boot.ended_ms - boot.started_ms
        booting = min(awake, board.wake_to_app_ms)
        connected = _spans(boot, "central", ("radio",), key="on")
        advertising = _spans(boot, "advertise", ("advertise", "advertise_stop", "radio"))
        scans = [
            (a, b, e["window_us"] / e["interval_us"])
            for (a, b), e in zip(
                _spans(boot, "scan", ("scan_stop", "radio")),
                [e for e in boot.events if e["kind"] == "scan"],
                strict=False,
            )
        ]
        scanning = int(sum((b - a - _overlap([(a, b)], connected)) * duty for a, b, duty in scans))
        connected_ms = min(_total(connected), awake - booting)
        advertising_ms = _total(advertising) - _overlap(advertising, connected)
        # The receiver's share of a scan replaces the same share of advertising.
        advertising_ms = max(0, advertising_ms - scanning)
        scanning = min(scanning, awake - booting - connected_ms)
        advertising_ms = min(advertising_ms, awake - booting - connected_ms - scanning)
        energy.ms["boot"] += booting
        energy.ms["connected"] += connected_ms
        energy.ms["scanning"] += scanning
        energy.ms["advertising"] += advertising_ms
        energy.ms["cpu_active"] += awake - booting - connected_ms - scanning - advertising_ms
        asleep_from = boot.ended_ms
    energy.ms["deep_sleep"] += max(0, until_ms - asleep_from)
    currents = board.currents_ua
    energy.uah = sum(currents[state] * ms for state, ms in energy.ms.items()) / 3_600_000
    return energy
