"""The scripted scenario behind `amr demo`: one virtual unit through boot,
a real gesture with contact bounce, an alert sequence, deep sleep and wake,
a second alarm during the first alert, and a unit with no config (a fault)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amrkit.boards import Board
from amrkit.receiver import Receiver
from amrkit.twin.factory import firmware_module, provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import Boot, VirtualUnit

WAKES = {0: "power-on", 7: "button", 4: "timer"}


def clock(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def transcript(boot: Boot, name: str, rx: Receiver, out: Callable[[str], None]) -> None:
    """Print one boot: the firmware's log, what it advertised, what the
    receiver made of it."""
    out(f"{clock(boot.started_ms)}  {name}  -- wake: {WAKES.get(boot.wake_reason, '?')} --")
    for line in boot.lines:
        out(f"{'':12}  {name}  {line}")
    for event in boot.events:
        if event["kind"] == "advertise":
            data = event["data"]
            out(
                f"{clock(event['t'])}  {name}  radio: {len(data) // 2}-byte frame "
                f"{data[4:12]}... from {event['addr']}"
            )
            for seen in rx.feed(bytes.fromhex(data), event["t"] / 1000):
                out(f"{'':12}  receiver  {describe_event(seen)}")
        elif event["kind"] == "power_cut":
            out(f"{clock(event['t'])}  {name}  POWER CUT at flash commit {event['commit']}")


def describe_event(event: dict[str, Any]) -> str:
    what = event["event"].upper() if event["event"] == "alert" else event["event"]
    detail = f"alert {event['alert_id']}, " if event["event"] == "alert" else ""
    return (
        f"verified {what} from unit {event['unit'][:8]}: {detail}counter {event['counter']}, "
        f"battery {event['battery_pct']}%"
    )


def run_demo(board: Board, out: Callable[[str], None] = print) -> dict[str, int]:
    """Run the scenario; returns the unit's diagnostics at the end."""
    with tempfile.TemporaryDirectory(prefix="amr-demo-") as tmp:
        unit = VirtualUnit(Path(tmp) / "unit-1", board)
        rx = Receiver([provision(unit)])
        out(
            f"Virtual {board.chip} unit on board {board.name} "
            f"(wake to app {board.wake_to_app_ms} ms), factory config, battery {unit.battery_mv} mV"
        )
        rng = Rng(2026)
        out("\n# Insert the cell: cold boot, heartbeat scheduled, deep sleep")
        transcript(unit.power_on(), "unit-1", rx, out)
        out("\n# 00:00:10 the wearer taps three times (contact bounce included)")
        unit.press(10_000, trace(rng, taps(rng, 3)))
        out("# 00:00:40 ... and, during the alert, holds the button for 2 s")
        unit.press(40_000, trace(rng, [(0, 2000)]))
        for boot in unit.run_until(3 * 60_000):
            transcript(boot, "unit-1", rx, out)
        out("\n# Nothing acknowledges yet, so retries go on at most 60 s apart; for the")
        out("# next hour only the receiver's events are shown (retries are de-duplicated)")
        for boot in unit.run_until(3_700_000):
            events = [e for e in boot.events if e["kind"] == "advertise"]
            heard = [rx.feed(bytes.fromhex(e["data"]), e["t"] / 1000) for e in events]
            for seen in (e for batch in heard for e in batch):
                out(f"{clock(int(seen['t'] * 1000))}  receiver  {describe_event(seen)}")
        diag = firmware_module("diag").decode(_diag_bytes(unit))
        counters = diag.as_dict() if diag else {}
        out("\n# Diagnostics kept across deep sleep (RTC memory)")
        out("  " + ", ".join(f"{k}={v}" for k, v in counters.items()))

        out("\n# A unit whose config was never written: visible fault, nothing sent")
        blank = VirtualUnit(Path(tmp) / "unit-2", board)
        transcript(blank.power_on(), "unit-2", rx, out)
        out(f"\n# Receiver: {dict(sorted(rx.stats.items()))}")
        return dict(counters)


def _diag_bytes(unit: VirtualUnit) -> bytes:
    saved = firmware_module("rtcmem").unpack(unit.rtc_memory())
    return bytes(saved[0]) if saved else b""
