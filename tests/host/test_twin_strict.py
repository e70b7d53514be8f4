"""The twin is as strict as the chip: sample order within a millisecond,
the 1 ms tick, level-triggered deep-sleep wake, a stuck contact, the
watchdog after a hang, and the one BLE() object."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sim_control import control

from amrkit.boards import load_board
from amrkit.contract import GPIO_WAKE, WDT_RESET
from amrkit.paths import firmware_dir, firmware_module
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, replay, taps, trace
from amrkit.twin.sim import Sim
from amrkit.twin.unit import VirtualUnit

BOARD = load_board()
CFG = firmware_module("config").DEFAULTS
press = firmware_module("press")


def make_unit(tmp_path: Path) -> VirtualUnit:
    unit = VirtualUnit(tmp_path / "unit", BOARD)
    provision(unit)
    unit.power_on()
    return unit


def lines(unit: VirtualUnit, text: str) -> list[str]:
    return [line for b in unit.boots for line in b.lines if text in line]


def diagnostics(unit: VirtualUnit) -> object:
    rtc = firmware_module("rtcmem").unpack(unit.rtc_memory())
    return firmware_module("diag").decode(rtc[0])


def test_samples_in_one_millisecond_keep_their_order(tmp_path: Path) -> None:
    # A tap whose release bounces within one millisecond: sorted by level,
    # the contact would end closed, a hold that never lets go.
    unit = make_unit(tmp_path)
    unit.press(10_000, [(0, True), (150, False), (150, True), (150, False)])
    unit.run_until(40_000)
    assert not unit.contact_closed(40_000)
    assert lines(unit, "reserved and persisted") == []
    assert lines(unit, "gesture: rejected after 1 presses")
    assert unit.boots[-1].wake_on_pressed is True  # asleep, waiting for a press


def test_fractional_times_fall_on_the_millisecond_tick(tmp_path: Path) -> None:
    unit = make_unit(tmp_path)
    rng = Rng(4)
    presses = taps(rng, 3)
    unit.press(10_000.5, [(t + 0.7, p) for t, p in trace(rng, presses)])
    unit.run_until(60_000)
    assert len(lines(unit, "reserved and persisted")) == 1
    assert all(isinstance(t, int) for t, _ in unit.samples)
    # The recogniser model takes them too, as the chip's tick would stamp them.
    rec = press.Recogniser(CFG)
    samples = [(0.1, True), (120.7, False)]
    assert [e for _, e in replay(rec, samples, 5_000.5)] == [press.REJECTED]


def test_the_chip_wakes_on_a_level_not_an_edge(tmp_path: Path) -> None:
    # Firmware that arms the button to wake on a press while the contact is
    # already closed: the chip wakes at once, as an ESP32-C3 does.
    firmware = tmp_path / "fw"
    shutil.copytree(firmware_dir(), firmware)  # the emulations read amr.contract
    (firmware / "main.py").write_text(
        "import esp32, machine\n"
        f"pin = machine.Pin({BOARD.button_pin}, machine.Pin.IN)\n"
        "esp32.wake_on_gpio((pin,), esp32.WAKEUP_ALL_LOW)\n"
        "machine.deepsleep(60000)\n"
    )
    unit = VirtualUnit(tmp_path / "unit", BOARD, firmware=firmware)
    unit.press(0, [(0, True)])
    boot = unit.power_on()
    assert boot.wake_on_pressed is True
    assert unit.next_wake() == (boot.ended_ms, GPIO_WAKE)


def test_a_stuck_contact_raises_one_alarm_sleeps_until_release_and_is_a_fault(
    tmp_path: Path,
) -> None:
    unit = make_unit(tmp_path)
    beat_ms = firmware_module("config").DEFAULTS["heartbeat_s"] * 1000
    held_until = 10_000 + beat_ms + 100_000  # past a heartbeat
    unit.press(10_000, [(0, True), (held_until - 10_000, False)])
    unit.run_until(held_until - 1)
    assert len(lines(unit, "reserved and persisted")) == 1  # the hold's alarm, once
    assert len(lines(unit, "FAULT stuck button")) == 1
    d = diagnostics(unit)
    assert d.last_error == firmware_module("diag").E_STUCK_BUTTON
    held = [b for b in unit.boots if b.started_ms >= 10_000]
    # The hold's own boot ends once the contact counts as stuck; after it
    # the unit wakes only for its timers (alert retries, a heartbeat), each
    # boot as brief as its radio work, never at once for the closed contact.
    # (or once the alarm's burst and its first retry are out, if later).
    config = firmware_module("config").DEFAULTS
    alert_ms = config["hold_ms"] + config["burst_ms"] + config["retry_first_s"] * 1000 + 1000
    busy_ms = max(10_000, alert_ms)
    assert held[0].ended_ms - held[0].started_ms <= busy_ms + BOARD.wake_to_app_ms
    assert len(held) > 10
    assert all(b.wake_reason != GPIO_WAKE for b in held[1:])
    # (A retry and a heartbeat due together share one wake: 1 s each.)
    assert all(b.ended_ms - b.started_ms < 2_500 for b in held[1:])
    assert all(b.wake_on_pressed is False for b in held)  # armed to wake on release
    # Letting go wakes it; that is not a press, and the button works again.
    unit.run_until(held_until + 10_000)
    # The first wake from the release on (a retry's timer may follow it).
    release = next(b for b in unit.boots if b.started_ms >= held_until)
    assert release.wake_reason == GPIO_WAKE and release.wake_on_pressed is True
    presses = diagnostics(unit).presses
    rng = Rng(9)
    unit.press(held_until + 20_000, trace(rng, taps(rng, 3)))
    unit.run_until(held_until + 120_000)
    assert len(lines(unit, "reserved and persisted")) == 2
    assert diagnostics(unit).presses == presses + 3


def test_a_hang_during_an_alert_ends_in_a_watchdog_reset_and_the_alert_goes_out(
    tmp_path: Path,
) -> None:
    unit = make_unit(tmp_path)
    rng = Rng(12)
    unit.press(10_000, trace(rng, [(0, CFG["hold_ms"] + 500)]))
    unit.hang(10_000 + CFG["hold_ms"] + 800)  # during the alert's burst
    unit.run_until(10_000 + 300_000)
    hung = next(b for b in unit.boots if any(e["kind"] == "hang" for e in b.events))
    assert hung.watchdog
    after = unit.boots[unit.boots.index(hung) + 1]
    assert after.reset_cause == WDT_RESET
    assert diagnostics(unit).reset_watchdog == 1
    # The pending alert resumes after the reset, from flash.
    sent_after = [e for e in after.events if e["kind"] == "advertise"]
    assert sent_after, after.lines
    assert any("alert 1 attempt" in line for line in after.lines), after.lines


def test_amr_info_shows_a_stuck_button(tmp_path: Path) -> None:
    with Sim(1, BOARD, tmp_path / "fleet") as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])
        held_ms = 13_000  # past the stuck wait, in real time
        assert control(sim, {"cmd": "press", "unit": "unit-1", "duration_ms": held_ms})["ok"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not lines(sim_unit.unit, "FAULT stuck button"):
            time.sleep(0.2)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "amr"), "info", "--port", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # A unit with a fault is not fit for use: the verdict says so, exit 7.
        assert result.returncode == 7, result.stderr
        assert "stuck button" in result.stdout and "\nverdict: not fit for use" in result.stdout
        report = json.loads(
            subprocess.run(
                [str(Path(sys.executable).parent / "amr"), "info", "--port", url, "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
        )
        assert report["last_fault"].startswith("stuck button")


def test_ble_is_one_object_and_the_radio_core_dispatches_its_events(tmp_path: Path) -> None:
    firmware = tmp_path / "fw"
    shutil.copytree(firmware_dir(), firmware)
    (firmware / "main.py").write_text(
        "import bluetooth, machine\n"
        "from amr import blecore\n"
        "seen = []\n"
        "blecore.handle((5,), lambda event, data: seen.append(event))\n"
        "print('same', bluetooth.BLE() is bluetooth.BLE() is blecore.ble())\n"
        "bluetooth.BLE()._handler(5, ())\n"  # the stack raising a scan result
        "bluetooth.BLE()._handler(1, ())\n"  # an event nobody registered for
        "print('seen', seen)\n"
        "machine.deepsleep(1000)\n"
    )
    unit = VirtualUnit(tmp_path / "unit", BOARD, firmware=firmware)
    boot = unit.power_on()
    assert "same True" in boot.lines
    assert "seen [5]" in boot.lines


def test_amr_sim_injects_a_hang_and_the_watchdog_brings_the_alert_back(tmp_path: Path) -> None:
    # Sleep in real time: at the default speed, the few ms between the press and
    # the hang command would be seconds of the unit's clock, and the hang could
    # land in a later retry's boot instead of the alarm's.
    with Sim(1, BOARD, tmp_path / "fleet", speed=1.0) as sim:
        unit = sim.units["unit-1"].unit
        bad = control(sim, {"cmd": "hang", "unit": "unit-1", "in_ms": -5})
        assert bad["ok"] is False and "in_ms" in bad["error"]
        assert control(sim, {"cmd": "press", "unit": "unit-1", "duration_ms": 2000})["ok"]
        # The alarm is reserved 1.5 s into the hold; the hang comes 2 s after
        # that, inside the burst, with room for a slow boot on a loaded host.
        assert control(sim, {"cmd": "hang", "unit": "unit-1", "in_ms": 3500})["ok"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            b.reset_cause == WDT_RESET and any("alert 1 attempt" in line for line in b.lines)
            for b in list(unit.boots)
        ):
            time.sleep(0.2)
        hung = [b for b in unit.boots if b.watchdog]
        assert len(hung) == 1 and any("reserved and persisted" in line for line in hung[0].lines)
        after = unit.boots[unit.boots.index(hung[0]) + 1]
        assert after.reset_cause == WDT_RESET
        assert any("alert 1 attempt" in line for line in after.lines), after.lines
