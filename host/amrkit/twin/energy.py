"""Charge drawn by a virtual unit: time in each power state, from what its
boots recorded, times the board profile's currents (hardware/boards).

Each awake millisecond is counted once, in the most expensive state it was
in: connected to a host (service mode), the receiver on (scanning, for the
scan window's share of each interval), a frame on the air (advertising),
else the CPU alone. Boot is the profile's wake-to-app time."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from amrkit.boards import Board
from amrkit.twin.unit import Boot

STATES = ("deep_sleep", "boot", "cpu_active", "advertising", "scanning", "connected")


@dataclass
class Energy:
    ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    uah: float = 0.0  # charge drawn from the cell, µAh

    def as_dict(self) -> dict[str, object]:
        return {"ms": dict(self.ms), "uah": round(self.uah, 3)}


def _spans(
    boot: Boot, opens: str, closes: tuple[str, ...], key: str | None = None
) -> list[tuple[int, int, dict[str, Any]]]:
    """Stretches between an `opens` event (with field `key` true, if given)
    and the next `closes` event, a re-open or the end of the boot, each with
    the event that opened it."""
    spans: list[tuple[int, int, dict[str, Any]]] = []
    start: dict[str, Any] | None = None
    for event in boot.events:
        kind = event["kind"]
        is_open = kind == opens and (key is None or event.get(key))
        is_close = kind in closes or (kind == opens and key is not None and not event.get(key))
        if start is not None and (is_open or is_close):
            spans.append((start["t"], event["t"], start))
            start = None
        if is_open:
            start = event
    if start is not None:
        spans.append((start["t"], boot.ended_ms, start))
    return spans


def _covers(spans: list[tuple[int, int, dict[str, Any]]], t: int) -> list[dict[str, Any]]:
    return [event for a, b, event in spans if a <= t < b]


def _awake_ms(board: Board, boot: Boot) -> dict[str, int]:
    """One boot's time per state: a sweep over the moments anything changed,
    each stretch going to the most expensive state it was in."""
    booting = min(boot.ended_ms - boot.started_ms, board.wake_to_app_ms)
    app_from = boot.started_ms + booting
    connected = _spans(boot, "central", ("radio",), key="on")
    advertising = _spans(boot, "advertise", ("advertise", "advertise_stop", "radio"))
    scanning = _spans(boot, "scan", ("scan_stop", "radio"))
    edges = {app_from, boot.ended_ms}
    for a, b, _ in connected + advertising + scanning:
        edges.update(t for t in (a, b) if app_from < t < boot.ended_ms)
    ms = dict.fromkeys(STATES, 0.0)
    points = sorted(edges)
    for x, y in itertools.pairwise(points):
        length = y - x
        if _covers(connected, x):
            ms["connected"] += length
            continue
        # The receiver is on for the scan window's share of each interval.
        duty = max((e["window_us"] / e["interval_us"] for e in _covers(scanning, x)), default=0)
        ms["scanning"] += length * duty
        ms["advertising" if _covers(advertising, x) else "cpu_active"] += length * (1 - duty)
    out = {state: round(value) for state, value in ms.items()}
    out["boot"] = booting
    out["cpu_active"] = (
        boot.ended_ms - boot.started_ms - sum(out[s] for s in STATES if s != "cpu_active")
    )
    return out


def account(board: Board, boots: list[Boot], until_ms: int) -> Energy:
    """Charge for the unit's life up to until_ms (asleep between boots)."""
    energy = Energy()
    asleep_from = 0
    for boot in boots:
        energy.ms["deep_sleep"] += max(0, boot.started_ms - asleep_from)
        for state, ms in _awake_ms(board, boot).items():
            energy.ms[state] += ms
        asleep_from = boot.ended_ms
    energy.ms["deep_sleep"] += max(0, until_ms - asleep_from)
    currents = board.currents_ua
    energy.uah = sum(currents[state] * ms for state, ms in energy.ms.items()) / 3_600_000
    return energy
