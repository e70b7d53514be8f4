"""A flash that refuses writes (full or worn) on a twin unit: the alarm still
goes out; what cannot go out safely is a fault with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.power_cuts import flash_state
from amrkit.twin.receivers import acknowledge_alert
from amrkit.twin.unit import Boot, VirtualUnit
from amrkit.unit.wired import command_source

BOARD = load_board()
FLASH_WRITE = firmware_module("diag").E_FLASH_WRITE


def alarm(unit: VirtualUnit, seed: int) -> None:
    rng = Rng(seed)
    unit.press(unit.clock_ms + 2_000, trace(rng, taps(rng, 3)))


def in_use(tmp_path: Path) -> tuple[VirtualUnit, KnownUnit, Receiver]:
    """A unit that has sent an acknowledged alert: its counter block is reserved."""
    unit = VirtualUnit(tmp_path / "unit", BOARD)
    known = provision(unit)
    receiver = Receiver([known])
    unit.power_on()
    alarm(unit, 1)
    heard = []
    unit.run_until(
        120_000, on_boot=lambda b: heard.append(acknowledge_alert(unit, b, receiver, known.unit))
    )
    assert any(heard) and flash_state(unit).pending == []
    return unit, known, receiver


def test_an_alarm_the_flash_cannot_keep_still_goes_out_until_acknowledged(
    tmp_path: Path,
) -> None:
    unit, known, receiver = in_use(tmp_path)
    unit.fill_flash()
    start = unit.clock_ms
    # A receiver that acknowledges whatever alert this unit raises next.
    for alert_id in range(256):
        unit.air(receiver.ack_ad(known.unit, alert_id), start + 20_000, start + 600_000)
    alarm(unit, 2)
    boots = unit.run_until(start + 900_000)
    lines = [line for b in boots for line in b.lines]
    assert any("reserved in RAM only" in line and "flash write failed" in line for line in lines)
    heard = [e for b in boots for e in _verified(b, receiver) if e["event"] == "alert"]
    assert heard, "the alert did not reach the receiver"
    assert any("acknowledged by the receiver" in line for line in lines)
    # Acknowledged: the unit goes back to deep sleep, with nothing pending
    # and its flash as it was (nothing was written).
    assert not boots[-1].power_cut and boots[-1].sleep_ms is not None
    assert flash_state(unit).pending == []
    # The host reads the fault over the wired link.
    _, out = unit.wired(command_source("diagnostics", None))
    assert json.loads(out)["last_error"] == FLASH_WRITE, out


def test_a_flash_full_before_any_counter_is_reserved_is_a_fault_with_its_reason(
    tmp_path: Path,
) -> None:
    unit = VirtualUnit(tmp_path / "unit", BOARD)
    provision(unit)
    unit.power_on()
    unit.fill_flash()
    alarm(unit, 3)
    boots = unit.run_until(unit.clock_ms + 60_000)
    lines = [line for b in boots for line in b.lines]
    # No counter could be reserved: sending would risk reusing one after a
    # power loss, so nothing goes out and the fault says why.
    assert any("FAULT" in line and "flash write failed" in line for line in lines), lines
    assert not any(e["kind"] == "advertise" for b in boots for e in b.events)


def _verified(boot: Boot, receiver: Receiver) -> list[dict[str, Any]]:
    return [
        event
        for sent in boot.events
        if sent["kind"] == "advertise" and not sent["connectable"]
        for event in receiver.feed(bytes.fromhex(sent["data"]), sent["t"] / 1000)
    ]
