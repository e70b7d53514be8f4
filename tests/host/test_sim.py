"""`amr sim` as tools reach it: a press injected through the control port
is heard by `amr listen` over the virtual radio, acknowledged over the air,
and the unit stops retrying; serial ports and the control port answer."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import serial
from click.testing import CliRunner
from esptool.cmds import attach_flash, detect_chip, reset_chip, write_flash
from esptool.loader import DEFAULT_TIMEOUT
from listen_cli import amr_listen
from sim_control import control

from amrkit import build
from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.cli import EXIT_UNIT, main
from amrkit.cli.common import EXIT_UNFIT
from amrkit.paths import firmware_module
from amrkit.twin.factory import provision
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim

PASS = "sim test"


def test_press_is_verified_and_acknowledged_over_the_virtual_radio(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with Sim(2, load_board(), tmp_path / "fleet") as sim:
        lines = [u.announce() for u in sim.units.values()]
        assert [line["unit"] for line in lines] == ["unit-1", "unit-2"]
        assert all(str(line["serial"]).startswith("rfc2217://127.0.0.1:") for line in lines)
        assert {line["ble"] for line in lines} == {sim.ble}
        bundle = tmp_path / "rx.bundle"
        write_bundle(bundle, [u.known for u in sim.units.values() if u.known], PASS)
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"] is True
        # The unit hears the acknowledgement at its first retry, after the burst.
        config = firmware_module("config").DEFAULTS
        listen_s = config["burst_ms"] // 1000 + config["retry_first_s"] + 5
        code, events, err = amr_listen(
            bundle,
            tmp_path / "rx.sqlite",
            PASS,
            "--transport",
            sim.ble,
            "--ack",
            "--duration",
            str(listen_s),
        )
        assert code == 0, err
        alerts = [e for e in events if e["event"] == "alert"]
        unit_1 = sim.units["unit-1"]
        assert len(alerts) == 1 and unit_1.known and alerts[0]["unit"] == unit_1.known.unit
        log = [line for b in unit_1.unit.boots for line in b.lines]
        assert any("acknowledged by the receiver" in line for line in log), log[-10:]
        status = control(sim, {"cmd": "status", "unit": "unit-1"})
        assert status["ok"] is True and status["boots"] >= 2  # power-on, then the alarm
        energy = status["energy"]
        assert isinstance(energy, dict) and energy["uah"] > 0
    assert set(threading.enumerate()) <= before | {threading.main_thread()}


def test_radio_loss_delays_an_alert_but_it_still_gets_through(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        bundle = tmp_path / "rx.bundle"
        write_bundle(bundle, [u.known for u in sim.units.values() if u.known], PASS)
        bad = control(sim, {"cmd": "radio_loss", "unit": "unit-1", "p": 1.5})
        assert bad["ok"] is False and "0.0 to 1.0" in str(bad["error"])
        assert control(sim, {"cmd": "radio_loss", "unit": "unit-1", "p": 1.0})["radio_loss"] == 1.0
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"] is True
        rx = tmp_path / "rx.sqlite"
        # Deaf for the whole burst (burst_ms), so what gets through is a retry.
        deaf_s = str(firmware_module("config").DEFAULTS["burst_ms"] // 1000 + 2)
        _, deaf, _ = amr_listen(bundle, rx, PASS, "--transport", sim.ble, "--duration", deaf_s)
        assert not [e for e in deaf if e["event"] == "alert"]  # every frame lost
        assert control(sim, {"cmd": "radio_loss", "unit": "unit-1", "p": 0.0})["ok"] is True
        code, events, err = amr_listen(
            bundle, rx, PASS, "--transport", sim.ble, "--ack", "--duration", "20"
        )
        assert code == 0, err
        alerts = [e for e in events if e["event"] == "alert"]
        assert len(alerts) == 1 and alerts[0]["attempt"] > 0  # a retry got through
        log = [line for b in sim.units["unit-1"].unit.boots for line in b.lines]
        assert any("acknowledged by the receiver" in line for line in log), log[-10:]


def test_every_frame_comes_from_a_fresh_non_resolvable_address(tmp_path: Path) -> None:
    """The firmware's radio drives the virtual radio itself: what a scanner
    hears is each frame under the address the firmware chose for it."""
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        heard: dict[bytes, set[str]] = {}

        async def listen() -> None:
            host = await sim.radio.radio.open_host("observer")

            def on_adv(adv: Any) -> None:
                data = bytes(adv.data_bytes)
                if len(data) == 31:
                    heard.setdefault(data, set()).add(adv.address.to_string(False))

            host.device.on("advertisement", on_adv)
            await host.device.start_scanning(filter_duplicates=False)
            await asyncio.sleep(listen_s)
            await host.close()

        # The burst, then the first retry: two frames.
        config = firmware_module("config").DEFAULTS
        listen_s = config["burst_ms"] / 1000 + config["retry_first_s"] + 3
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        sim.radio.call(listen(), timeout=listen_s + 30)
    assert len(heard) >= 2, "fewer than two frames heard"
    addresses = [a for frame in heard.values() for a in frame]
    assert all(len(a) == 1 for a in heard.values())  # one address per frame
    assert len(set(addresses)) == len(heard)  # and never the same twice
    # Non-resolvable private: the two most significant bits are 00.
    assert all(int(a[:2], 16) >> 6 == 0 for a in addresses)


def processes_in(directory: Path, running: str = "") -> list[int]:
    """Pids of processes working in `directory` (the units' firmware and
    REPL run there) whose command line contains `running`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and (proc / "cwd").resolve().is_relative_to(directory)
                and running.encode() in (proc / "cmdline").read_bytes()
            ):
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return pids


def test_the_twin_leaves_no_process_or_port_behind(tmp_path: Path) -> None:
    fleet = (tmp_path / "fleet").resolve()
    with Sim(2, load_board(), fleet) as sim:
        ports = [int(sim.control.rsplit(":", 1)[1]), int(sim.ble.rsplit(":", 1)[1])]
        for sim_unit in sim.units.values():
            ports.append(int(str(sim_unit.announce()["serial"]).rsplit(":", 1)[1]))
            assert sim_unit.unit.ble is not None
            ports.append(int(sim_unit.unit.ble.rsplit(":", 1)[1]))
        # unit-1 awake in service mode (a firmware process running) at the end
        assert control(sim, {"cmd": "service", "unit": "unit-1"})["ok"] is True
        deadline = time.monotonic() + 30
        while not processes_in(fleet) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_in(fleet), "the unit never woke into service mode"
    assert processes_in(fleet) == []
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_power_cut_in_the_middle_of_an_alert_burst_loses_nothing(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        unit = sim.units["unit-1"].unit
        assert control(sim, {"cmd": "press", "unit": "unit-1", "duration_ms": 2000})["ok"]
        events = unit.directory / "events.jsonl"
        deadline = time.monotonic() + 30
        while not (events.exists() and '"advertise"' in events.read_text()):
            assert time.monotonic() < deadline, "the alert never went on the air"
            time.sleep(0.02)
        # Awake, its burst on the air: the cell is pulled this instant.
        reply = control(sim, {"cmd": "power_cut", "unit": "unit-1"})
        assert reply["ok"] is True and reply["on"] is False
        deadline = time.monotonic() + 10
        while not unit.boots[-1].power_cut:
            assert time.monotonic() < deadline, "the boot did not end with the cut"
            time.sleep(0.02)
        assert processes_in(unit.directory.resolve(), "main.py") == []  # the app stopped
        assert control(sim, {"cmd": "power_on", "unit": "unit-1"})["ok"] is True
        log = unit.boots[-1].lines
        # The persisted alert resumes after the power-on: retried, not lost.
        assert any("attempt 1" in line for line in log), log


def test_control_errors_say_what_to_do(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        reply = control(sim, {"cmd": "press", "unit": "unit-9"})
        assert reply["ok"] is False and "units are unit-1" in str(reply["error"])
        reply = control(sim, {"cmd": "dance", "unit": "unit-1"})
        assert reply["ok"] is False and "use press" in str(reply["error"])
        reply = control(sim, {"cmd": "power_cut", "unit": "unit-1"})
        assert reply["ok"] is True and reply["on"] is False
        reply = control(sim, {"cmd": "power_on", "unit": "unit-1"})
        assert reply["ok"] is True and reply["on"] is True


def test_units_keep_their_flash_across_restarts(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    with Sim(1, load_board(), fleet) as sim:
        first = sim.units["unit-1"].known
    with Sim(1, load_board(), fleet) as sim:
        again = sim.units["unit-1"]
        assert again.known == first
        assert len(again.unit.boots) == 1  # booted from the flash it had


def test_serial_port_answers_mpremote_and_esptool(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        url = str(sim.units["unit-1"].announce()["serial"])
        mpremote = Path(sys.executable).parent / "mpremote"
        out = subprocess.run(
            [str(mpremote), "connect", url, "resume", "exec", "print(6 * 7)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0 and out.stdout.strip() == "42", out.stdout + out.stderr
        esptool = Path(sys.executable).parent / "esptool"
        out = subprocess.run(
            [str(esptool), "--port", url, "--no-stub", "read-mac"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0 and "ESP32-C3" in out.stdout, out.stdout + out.stderr


def test_blank_unit_is_flashed_with_esptool_and_deployed_with_mpremote(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet", blank=True) as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])
        # A factory-new board: empty flash. Flash MicroPython (the stand-in
        # image) with esptool's library API, then hard-reset into it.
        esp = detect_chip(serial.serial_for_url(url, timeout=DEFAULT_TIMEOUT))
        try:
            attach_flash(esp)
            write_flash(esp, [(0x0, stand_in_image())], compress=True)
            reset_chip(esp, "hard-reset")
        finally:
            esp._port.close()
        # Deploy the app with mpremote, as a technician would.
        app = build.build(load_board(), tmp_path / "build")
        mpremote = str(Path(sys.executable).parent / "mpremote")
        for args in (["fs", "cp", "-r", "amr", ":"], ["fs", "cp", "main.py", ":"]):
            out = subprocess.run(
                [mpremote, "connect", url, "resume", *args],
                cwd=app,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert out.returncode == 0, out.stdout + out.stderr
        fs = sim_unit.unit.firmware
        assert (fs / "main.py").read_bytes() == (app / "main.py").read_bytes()
        assert (fs / "amr" / "app.mpy").read_bytes() == (app / "amr" / "app.mpy").read_bytes()
        # Deployed, nothing provisioned: it answers as a unit that is not fit.
        info = subprocess.run(
            [str(Path(sys.executable).parent / "amr"), "info", "--port", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert info.returncode == EXIT_UNFIT, info.stdout + info.stderr
        assert "Traceback" not in info.stdout + info.stderr
        assert "keys  not provisioned" in info.stdout and "config  not provisioned" in info.stdout
        assert "  not provisioned: run amr provision" in info.stdout
        # Keys and config come from the host (the twin's factory image here).
        provision(sim_unit.unit)
        reply = control(sim, {"cmd": "power_on", "unit": "unit-1"})
        assert reply["ok"] is True and reply["on"] is True
        assert any("boot: reset cause 1" in line for line in sim_unit.unit.boots[-1].lines)
        assert not any("FAULT" in line for line in sim_unit.unit.boots[-1].lines)


def test_amr_info_reads_battery_and_diagnostics_over_serial(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])
        # A used cell, above the firmware's warning threshold.
        assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 2800})["ok"] is True
        result = CliRunner().invoke(main, ["info", "--port", url, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert sim_unit.known and report["unit_id"] == sim_unit.known.unit
        assert abs(report["battery_mv"] - 2800) <= 2 and 0 < report["battery_pct"] < 100
        assert report["config"] == "ok" and report["keys"] == "present"
        assert report["state"] == {"counter_hwm": 0, "pending_alerts": 0, "pending_tests": 0}
        assert report["diagnostics"]["boots"] == 1
        keys = sim_unit.known.keys
        assert all(k.hex() not in result.stdout for k in (keys.enc, keys.id, keys.ack))
        # With internal resistance the unit reads its cell under its own load.
        bad_ohm = control(
            sim, {"cmd": "battery", "unit": "unit-1", "mv": 2800, "resistance_ohm": -1}
        )
        assert bad_ohm["ok"] is False and "resistance_ohm" in str(bad_ohm["error"])
        reply = control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 2800, "resistance_ohm": 10})
        assert reply["resistance_ohm"] == 10
        loaded = json.loads(CliRunner().invoke(main, ["info", "--port", url, "--json"]).stdout)
        assert abs(loaded["battery_mv"] - sim_unit.unit.loaded_mv("cpu_active")) <= 2
        assert loaded["battery_mv"] < report["battery_mv"] - 200
    bad = CliRunner().invoke(main, ["info", "--port", "rfc2217://127.0.0.1:9"])
    assert bad.exit_code == EXIT_UNIT and "cannot open" in bad.output


def test_power_cut_at_next_write_and_time_jump(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        unit = sim.units["unit-1"].unit
        assert control(sim, {"cmd": "power_cut", "unit": "unit-1", "at_next_write": True})["ok"]
        # The alarm's first flash write (the alert and its counters) loses power.
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        deadline = time.monotonic() + 20
        while unit.asleep and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not unit.asleep and unit.boots[-1].power_cut
        assert control(sim, {"cmd": "status", "unit": "unit-1"})["on"] is False
        assert control(sim, {"cmd": "power_on", "unit": "unit-1"})["on"] is True
        boots = len(unit.boots)
        # The unit's clock jumps a day ahead while it sleeps: at its next
        # wake it finds its heartbeat overdue and sends one, not twenty-four.
        before = unit.clock_ms
        assert control(sim, {"cmd": "time_jump", "unit": "unit-1", "ms": 24 * 3600_000})["ok"]
        assert unit.clock_ms >= before + 24 * 3600_000
        deadline = time.monotonic() + 30
        while len(unit.boots) < boots + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        woke = unit.boots[boots]
        assert woke.wake_reason == 4 and not woke.power_cut
        assert sum(1 for e in woke.events if e["kind"] == "advertise") == 1


def test_a_command_the_awake_unit_cannot_take_in_time_is_withdrawn_not_done_later(
    tmp_path: Path,
) -> None:
    with Sim(1, load_board(), tmp_path / "fleet", command_timeout_s=0.3) as sim:
        unit = sim.units["unit-1"].unit
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        deadline = time.monotonic() + 10
        while unit.awake_clock() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert unit.awake_clock() is not None, "the alarm did not wake the unit"
        year_ms = 365 * 86_400_000
        refused = control(sim, {"cmd": "time_jump", "unit": "unit-1", "ms": year_ms})
        assert refused["ok"] is False
        assert "was not done" in refused["error"] and "send it again" in refused["error"]
        # Once the unit sleeps between its alert's bursts, the withdrawn
        # jump has not happened; the same command sent again is done.
        deadline = time.monotonic() + 30
        while unit.awake_clock() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the unit's thread serves its queue between boots
        assert unit.clock_ms < year_ms
        again = {"cmd": "time_jump", "unit": "unit-1", "ms": year_ms}
        deadline = time.monotonic() + 30
        while not (reply := control(sim, again))["ok"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reply["ok"] and unit.clock_ms >= year_ms
