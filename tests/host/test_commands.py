"""The service commands, one table in the firmware, the same on both links:
the wired link (raw REPL through mpremote's transport) and BLE in service
mode (an authenticated control point), on `amr sim` units. `amr info` gives
the same fields over both."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import BleakError
from sim_control import control

from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.cli import EXIT_UNIT
from amrkit.contract import CONTROL_POINT_UUID
from amrkit.protocol import KnownUnit
from amrkit.twin.sim import Sim
from amrkit.unit import Unit, UnitError, readout
from amrkit.unit.ble import BleLink, connect, find
from amrkit.unit.wired import WiredLink

PASS = "commands test"
AMR = str(Path(sys.executable).parent / "amr")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Sim(1, load_board(), tmp_path_factory.mktemp("cmd") / "fleet") as fleet:
        yield fleet


def port(sim: Sim) -> str:
    return str(sim.units["unit-1"].announce()["serial"])


def known(sim: Sim) -> KnownUnit:
    unit = sim.units["unit-1"].known
    assert unit is not None
    return unit


def wired(sim: Sim, *names: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with WiredLink(port(sim)) as link:
            return [await link.command(name) for name in names]

    return asyncio.run(run())


def open_service_mode(sim: Sim) -> None:
    """The maintenance gesture, until the unit is heard in service mode. On
    a loaded host a real-time boot can run late and miss a tap of the
    gesture (as a slow boot would on the chip): then the gesture is made
    again, as a technician would."""
    unit = sim.units["unit-1"].unit
    for _ in range(3):
        deadline = time.monotonic() + 60
        while unit.awake_clock() is not None:  # an earlier session lingers
            assert time.monotonic() < deadline, "the unit never went back to sleep"
            time.sleep(0.1)
        assert control(sim, {"cmd": "service", "unit": "unit-1"})["ok"]
        try:
            asyncio.run(find([known(sim)], sim.ble, timeout_s=30))
            return
        except UnitError:
            continue
    raise AssertionError("service mode never opened")


def test_every_command_over_the_wired_link(sim: Sim) -> None:
    # The cell's internal resistance sags it under the radio's current.
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 3000, "resistance_ohm": 2})["ok"]
    info, battery, diag, test = wired(sim, "info", "battery", "diagnostics", "self_test")
    assert info["unit_id"] == known(sim).unit and info["keys"] == "present"
    assert info["button"] == "open" and info["last_fault"] == "none"
    assert battery["loaded_mv"] < battery["battery_mv"] - 100  # the radio draws the cell down
    assert battery["sag_mv"] == battery["battery_mv"] - battery["loaded_mv"]
    assert diag["boots"] >= 1
    assert test["pass"] is True and set(test["checks"]) >= {"config", "keys", "battery"}
    # Under the floor while the radio draws, the self-test fails and says why.
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 2450, "resistance_ohm": 3})["ok"]
    (test,) = wired(sim, "self_test")
    assert test["pass"] is False and "below the" in test["checks"]["battery"]
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 3000, "resistance_ohm": 0})["ok"]
    cleared, after = wired(sim, "clear_diagnostics", "diagnostics")
    counters = [name for name in after if name != "restored"]
    assert all(cleared[name] == after[name] == 0 for name in counters)
    assert after["restored"] is True  # kept in RTC memory, read back as a record


def test_an_unknown_command_is_refused_with_the_known_ones(sim: Sim) -> None:
    (reply,) = wired(sim, "format_flash")
    assert "unknown command" in reply["error"] and "self_test" in reply["error"]

    async def run() -> None:
        async with WiredLink(port(sim)) as link:
            await Unit(link).run("format_flash")

    with pytest.raises(UnitError, match="refused format_flash"):
        asyncio.run(run())


def test_a_cell_that_browns_out_under_the_reading_is_named(sim: Sim) -> None:
    # 40 mA of radio through 10 ohm takes 2.3 V under the 2.0 V brownout.
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 2300, "resistance_ohm": 10})[
        "ok"
    ]
    result = subprocess.run([AMR, "info", "--port", port(sim)], capture_output=True, text=True)
    assert result.returncode == EXIT_UNIT
    assert "browns out" in result.stderr and "Traceback" not in result.stderr
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 3000, "resistance_ohm": 0})["ok"]
    (info,) = wired(sim, "info")  # the unit answers again
    assert info["unit_id"] == known(sim).unit


def test_amr_info_gives_the_same_fields_over_serial_and_ble(sim: Sim, tmp_path: Path) -> None:
    serial = subprocess.run(
        [AMR, "info", "--port", port(sim), "--json"], capture_output=True, text=True, check=True
    )
    wired_report = json.loads(serial.stdout)
    human = subprocess.run(
        [AMR, "info", "--port", port(sim)], capture_output=True, text=True, check=True
    ).stdout
    assert "loaded_mv" in human and "{" not in human and "'" not in human  # text, not reprs
    bundle = tmp_path / "units.bundle"
    write_bundle(bundle, [known(sim)], PASS)
    open_service_mode(sim)
    ble = subprocess.run(
        [AMR, "info", "--transport", sim.ble, "--bundle", str(bundle), "--json"],
        capture_output=True,
        text=True,
        env={"AMR_BUNDLE_PASSPHRASE": PASS, "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert ble.returncode == 0, ble.stderr
    ble_report = json.loads(ble.stdout)
    assert set(ble_report) == set(wired_report)
    assert set(ble_report["diagnostics"]) == set(wired_report["diagnostics"])
    assert ble_report["unit_id"] == wired_report["unit_id"] == known(sim).unit
    assert abs(ble_report["battery_mv"] - wired_report["battery_mv"]) < 100
    keys = known(sim).keys
    assert all(k.hex() not in ble.stdout + serial.stdout for k in (keys.enc, keys.id, keys.ack))


def test_the_control_point_answers_only_an_authenticated_host(sim: Sim) -> None:
    open_service_mode(sim)
    unit = known(sim)

    async def unpaired() -> str:
        # Found and connected to the address it advertises now (it moves on
        # every few seconds), without pairing.
        _, client = await connect([unit], sim.ble, passkey=None)
        try:
            with pytest.raises(BleakError) as refused:
                await client.write_gatt_char(CONTROL_POINT_UUID, b"info", response=True)
        finally:
            await client.disconnect()
        return str(refused.value)

    assert "authentication" in asyncio.run(unpaired()).lower()

    async def paired() -> tuple[dict[str, Any], dict[str, Any]]:
        async with BleLink([unit], sim.ble) as link:
            return await Unit(link).self_test(), await readout(Unit(link))

    test, report = asyncio.run(paired())
    assert test["pass"] is True
    assert report["unit_id"] == unit.unit and "loaded_mv" in report


def test_a_blank_board_is_told_apart_without_a_traceback(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet", blank=True) as blank:
        result = subprocess.run(
            [AMR, "info", "--port", port(blank)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == EXIT_UNIT and result.stdout == ""
    assert "a blank board needs MicroPython and the app first" in result.stderr
    assert "Traceback" not in result.stderr
