"""Twin figures for `make bench`: how fast a sleeping fleet runs, and the
press-to-verified-alert latency through the twin, split by stage.

Times inside the firmware are the twin's virtual times: wake-to-app from the
board profile, waits and sleeps as the firmware asks for them, CPU work
counted as instant (its cost on the unix port is the `frame` and `press`
sections of the bench). The receiver stage is host CPU time.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from amrkit.ack_schedule import HOLD_S
from amrkit.boards import load_board
from amrkit.paths import firmware_module, micropython_binary
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.receivers import acknowledge_alert
from amrkit.twin.unit import VirtualUnit

_ALARM = re.compile(r"amr: \[(\d+) ms\] gesture: alarm")
_GAP_MS = 20 * 60_000  # between presses: long enough for the alert to be acknowledged
_SEED_WOKEN = 500_000  # apart from the seeds the other figures use


def fleet_speed(board_name: str, units: int, hours: int) -> dict[str, Any]:
    """Simulated seconds per wall second for a fleet that only sleeps and beats."""
    board = load_board(board_name)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = [VirtualUnit(Path(tmp) / f"unit-{i}", board) for i in range(units)]
        # Hourly heartbeats, so that a few virtual hours hold boots to time.
        hourly = dict(firmware_module("config").DEFAULTS, heartbeat_s=3600)
        for unit in fleet:
            provision(unit, hourly)
            unit.power_on()
        start = time.perf_counter()
        for unit in fleet:
            unit.run_until(hours * 3_600_000)
        wall = time.perf_counter() - start
        boots = sum(len(u.boots) - 1 for u in fleet)
    start = time.perf_counter()
    for _ in range(20):
        subprocess.run([micropython_binary(), "-c", "pass"], check=True)
    bare_s = (time.perf_counter() - start) / 20
    return {
        "units": units,
        "virtual_hours": hours,
        "wall_s": round(wall, 2),
        "simulated_s_per_wall_s": round(units * hours * 3600 / wall),
        "boots": boots,
        "ms_per_boot": round(1000 * wall / boots, 1),
        "baseline_bare_process_ms": round(1000 * bare_s, 1),
        "boot_to_bare_process_ratio": round(wall / boots / bare_s, 1),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2)}


def latency(board_name: str, presses: int) -> dict[str, Any]:
    """Press-to-verified-alert, over `presses` triple taps on one unit."""
    board = load_board(board_name)
    gesture, firmware, receiver_ms = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        unit = VirtualUnit(Path(tmp) / "unit", board)
        rx = Receiver([known := provision(unit)])
        unit.power_on()
        for n in range(presses):
            at = (n + 1) * _GAP_MS
            rng = Rng(n)
            unit.press(at, trace(rng, taps(rng, 3)))
            boots = unit.run_until(at + 1)
            boot = boots[-1]
            alarm = next(int(m.group(1)) for line in boot.lines if (m := _ALARM.match(line)))
            # The first frame that the receiver turns into the alert (a routine
            # frame due at the same wake may go out before the alarm).
            for first in (e for e in boot.events if e["kind"] == "advertise"):
                started = time.perf_counter()
                events = rx.feed(bytes.fromhex(first["data"]), first["t"] / 1000)
                elapsed = (time.perf_counter() - started) * 1000
                if any(e["event"] == "alert" for e in events):
                    break
            else:
                raise RuntimeError(f"press {n}: the receiver verified no alert")
            receiver_ms.append(elapsed)
            alert = next(e for e in events if e["event"] == "alert")
            # The twin answers after the boot: the acknowledgement holds to a retry.
            until = first["t"] + int(HOLD_S * 1000)
            unit.air(rx.ack_ad(known.unit, alert["alert_id"]), first["t"], until)
            gesture.append(float(alarm))
            firmware.append(float(first["t"] - boot.started_ms - alarm))
            unit.run_until(at + _GAP_MS // 2)  # the acknowledged alert ends
    total = [g + f + r for g, f, r in zip(gesture, firmware, receiver_ms, strict=True)]
    return {
        "presses": presses,
        "gesture_recognition_ms": _percentiles(gesture),
        "firmware_until_first_frame_ms": _percentiles(firmware),
        "receiver_verify_ms": _percentiles(receiver_ms),
        "total_ms": _percentiles(total),
        "firmware_share_pct_p50": round(
            100 * statistics.median(firmware) / statistics.median(total), 1
        ),
    }


def woken_fast_triple_taps(board_name: str, deployment: str, presses: int) -> dict[str, Any]:
    """Fast triple taps (taps 80-150 ms, gaps 120-250 ms) that wake a unit
    running the whole app in the twin, which holds the app back for the
    deployment's wake-to-app time: the share raised as an alarm."""
    board = load_board(board_name, deployment)
    recognised = 0
    with tempfile.TemporaryDirectory() as tmp:
        unit = VirtualUnit(Path(tmp) / "unit", board)
        rx = Receiver([known := provision(unit)])
        unit.power_on()
        for n in range(presses):
            at = (n + 1) * _GAP_MS
            rng = Rng(_SEED_WOKEN + n)
            unit.press(at, trace(rng, taps(rng, 3, tap_ms=(80, 150), gap_ms=(120, 250))))
            boot = unit.run_until(at + 1)[-1]
            if not any(_ALARM.match(line) for line in boot.lines):
                continue
            recognised += 1
            acknowledge_alert(unit, boot, rx, known.unit)
            unit.run_until(at + _GAP_MS // 2)
    return {
        "deployment": deployment,
        "wake_to_app_ms": board.wake_to_app_ms,
        "presses": presses,
        "recognised_pct": round(100 * recognised / presses, 1),
    }
