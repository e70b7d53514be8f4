"""The scripted scenario behind `amr demo`: one virtual unit through boot,
a real gesture with contact bounce, an alert sequence, deep sleep and wake,
a second alarm during the first alert, and a unit with no config (a fault)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from amrkit.boards import Board
from amrkit.twin.factory import firmware_module, provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import Boot, VirtualUnit

FRAME_KINDS = {1: "heartbeat", 2: "ALERT", 3: "alert retry", 4: "service"}
WAKES = {0: "power-on", 7: "button", 4: "timer"}


def clock(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def describe_frame(hex_data: str) -> str:
    data = bytes.fromhex(hex_data)
    kind, alert_id, counter = (
        data[2],
        int.from_bytes(data[3:7], "little"),
        int.from_bytes(data[7:11], "little"),
    )
    what = FRAME_KINDS.get(kind, f"kind {kind}")
    return (
        f"{what} (alert {alert_id}, counter {counter})"
        if kind in (2, 3)
        else (f"{what} (counter {counter})")
    )


def transcript(boot: Boot, name: str, out: Callable[[str], None]) -> None:
    out(f"{clock(boot.started_ms)}  {name}  -- wake: {WAKES.get(boot.wake_reason, '?')} --")
    for line in boot.lines:
        out(f"{'':12}  {name}  {line}")
    for event in boot.events:
        if event["kind"] == "advertise":
            out(f"{clock(event['t'])}  {name}  radio: advertising {describe_frame(event['data'])}")
        elif event["kind"] == "power_cut":
            out(f"{clock(event['t'])}  {name}  POWER CUT at flash commit {event['commit']}")


def run_demo(board: Board, out: Callable[[str], None] = print) -> dict[str, int]:
    """Run the scenario; returns the unit's diagnostics at the end."""
    with tempfile.TemporaryDirectory(prefix="amr-demo-") as tmp:
        unit = VirtualUnit(Path(tmp) / "unit-1", board)
        provision(unit)
        out(
            f"Virtual {board.chip} unit on board {board.name} "
            f"(wake to app {board.wake_to_app_ms} ms), factory config, battery {unit.battery_mv} mV"
        )
        rng = Rng(2026)
        out("\n# Insert the cell: cold boot, heartbeat scheduled, deep sleep")
        transcript(unit.power_on(), "unit-1", out)
        out("\n# 00:00:10 the wearer taps three times (contact bounce included)")
        unit.press(10_000, trace(rng, taps(rng, 3)))
        out("# 00:00:40 ... and, during the alert, holds the button for 2 s")
        unit.press(40_000, trace(rng, [(0, 2000)]))
        for boot in unit.run_until(3 * 60_000):
            transcript(boot, "unit-1", out)
        out("\n# No receiver acknowledges yet, so retries go on at most 60 s apart;")
        out("# an hour on, only the boot that also sends the heartbeat is shown")
        for boot in unit.run_until(3_700_000):
            if any(_is_heartbeat(e) for e in boot.events):
                transcript(boot, "unit-1", out)
        diag = firmware_module("diag").decode(_diag_bytes(unit))
        counters = diag.as_dict() if diag else {}
        out("\n# Diagnostics kept across deep sleep (RTC memory)")
        out("  " + ", ".join(f"{k}={v}" for k, v in counters.items()))

        out("\n# A unit whose config was never written: visible fault, nothing sent")
        blank = VirtualUnit(Path(tmp) / "unit-2", board)
        transcript(blank.power_on(), "unit-2", out)
        return dict(counters)


def _is_heartbeat(event: dict[str, object]) -> bool:
    data = event.get("data")
    return event["kind"] == "advertise" and isinstance(data, str) and data[4:6] == "01"


def _diag_bytes(unit: VirtualUnit) -> bytes:
    saved = firmware_module("rtcmem").unpack(unit.rtc_memory())
    return bytes(saved[0]) if saved else b""
