"""Charge drawn by a virtual unit: time in each power state, from what its
boots recorded, times the board profile's currents (hardware/boards)."""

from __future__ import annotations

from dataclasses import dataclass, field

from amrkit.boards import Board
from amrkit.twin.unit import Boot

STATES = ("deep_sleep", "boot", "cpu_active", "advertising")


@dataclass
class Energy:
    ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    uah: float = 0.0  # charge drawn from the cell, µAh

    def as_dict(self) -> dict[str, object]:
        return {"ms": dict(self.ms), "uah": round(self.uah, 3)}


def advertising_ms(boot: Boot) -> int:
    """Time a boot spent with a frame on the air (each frame until the next
    one, a stop, or the end of the boot)."""
    total = 0
    start: int | None = None
    for event in boot.events:
        if event["kind"] in ("advertise", "advertise_stop", "radio") and start is not None:
            total += event["t"] - start
            start = None
        if event["kind"] == "advertise":
            start = event["t"]
    if start is not None:
        total += boot.ended_ms - start
    return total


def account(board: Board, boots: list[Boot], until_ms: int) -> Energy:
    """Charge for the unit's life up to until_ms (asleep between boots)."""
    energy = Energy()
    asleep_from = 0
    for boot in boots:
        energy.ms["deep_sleep"] += max(0, boot.started_ms - asleep_from)
        awake = boot.ended_ms - boot.started_ms
        booting = min(awake, board.wake_to_app_ms)
        advertising = min(advertising_ms(boot), awake - booting)
        energy.ms["boot"] += booting
        energy.ms["advertising"] += advertising
        energy.ms["cpu_active"] += awake - booting - advertising
        asleep_from = boot.ended_ms
    energy.ms["deep_sleep"] += max(0, until_ms - asleep_from)
    currents = board.currents_ua
    energy.uah = sum(currents[state] * ms for state, ms in energy.ms.items()) / 3_600_000
    return energy
