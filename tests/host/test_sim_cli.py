"""`amr sim` and its client, as a user runs them: the sim in one terminal,
`amr sim press|battery|status ...` in another, found through the file the
running sim writes; `amr info` on the same units gives its verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import serial

from amrkit.cli import EXIT_UNIT
from amrkit.cli.common import EXIT_UNFIT
from amrkit.paths import firmware_module

AMR = str(Path(sys.executable).parent / "amr")


def test_the_sim_client_presses_and_reads_a_running_sim(tmp_path: Path) -> None:
    env = {**os.environ, "AMR_SIM_RUNTIME_DIR": str(tmp_path / "run"), "AMR_SIM_CONTROL": ""}

    def amr(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AMR, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def status(unit: str) -> dict[str, Any]:
        result = amr("sim", "status", unit, "--json")
        assert result.returncode == 0, result.stderr
        reply: dict[str, Any] = json.loads(result.stdout)
        return reply

    sim = subprocess.Popen(
        [AMR, "sim", "--units", "2", "--dir", str(tmp_path / "fleet")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert sim.stdout is not None
        lines = [json.loads(sim.stdout.readline()) for _ in range(2)]
        deadline = time.monotonic() + 30
        while not (tmp_path / "run" / "sim.json").exists():
            assert time.monotonic() < deadline, "the sim wrote no control file"
            time.sleep(0.1)
        # The client finds the sim by its file: a press (the alarm's taps) wakes unit-1.
        boots = status("unit-1")["boots"]
        pressed = amr("sim", "press", "unit-1", "--taps", "3")
        assert pressed.returncode == 0, pressed.stderr
        assert "boots" in pressed.stdout and "{" not in pressed.stdout  # fields, not JSON
        deadline = time.monotonic() + 60
        while status("unit-1")["boots"] <= boots:
            assert time.monotonic() < deadline, "the press never woke the unit"
            time.sleep(0.2)
        # Errors: an unknown unit, a value out of range.
        unknown = amr("sim", "service", "unit-9")
        assert unknown.returncode == 2 and "units are unit-1, unit-2" in unknown.stderr
        # A tired cell: the unit's verdict says so, exit 7.
        # Between the firmware's floor and its warning.
        config = firmware_module("config").DEFAULTS
        tired = (config["battery_floor_mv"] + config["low_battery_mv"]) // 2
        warning = config["low_battery_mv"]
        assert amr("sim", "battery", "unit-2", str(tired)).returncode == 0
        port = str(lines[1]["serial"])
        info = amr("info", "--port", port)
        assert info.returncode == EXIT_UNFIT, info.stderr
        assert "verdict: not fit for use" in info.stdout
        assert (
            f"low battery ({tired} mV under load, warning at {warning} mV): replace the cell"
            in info.stdout
        )
        as_json = json.loads(amr("info", "--port", port, "--json").stdout)
        assert as_json["verdict"] == [
            {
                "reason": f"low battery ({tired} mV under load, warning at {warning} mV)",
                "next_step": "replace the cell",
            }
        ]
        assert amr("sim", "battery", "unit-2", "3000").returncode == 0
        fit = amr("info", "--port", port)
        assert fit.returncode == 0 and fit.stdout.rstrip().endswith("verdict: ok"), fit.stdout
        # The port while another program holds it.
        with serial.serial_for_url(port):
            busy = amr("info", "--port", port)
        assert busy.returncode == EXIT_UNIT
        assert f"{port} is busy: another program has it open" in busy.stderr
    finally:
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=60)
    assert sim.returncode == 0, err
    assert [json.loads(line)["unit"] for line in out.splitlines()[-2:]] == ["unit-1", "unit-2"]
    assert not (tmp_path / "run" / "sim.json").exists()  # the sim took its file away
    gone = amr("sim", "status")
    assert gone.returncode == EXIT_UNIT and "no `amr sim` running" in gone.stderr
