"""The scripted scenario behind `amr demo`: one virtual unit and the phone
that receives it, through boot, a real gesture with contact bounce, a
verified and acknowledged alert, an alert nobody acknowledges at first,
deep sleep and wake, and a unit with nothing provisioned (a fault)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amrkit.ack_schedule import HOLD_S
from amrkit.boards import Board
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, ack_ad
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import Boot, VirtualUnit

WAKES = {0: "power-on", 7: "button", 4: "timer"}


def clock(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def transcript_boot(boot: Boot, name: str, out: Callable[[str], None]) -> None:
    """Print one boot: the firmware's log and what went on the air."""
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
        elif event["kind"] == "heard":
            out(f"{clock(event['t'])}  {name}  radio: heard {event['ad']}")
        elif event["kind"] == "power_cut":
            out(f"{clock(event['t'])}  {name}  POWER CUT at flash commit {event['commit']}")


def describe_event(event: dict[str, Any]) -> str:
    what = event["event"].upper() if event["event"] == "alert" else event["event"]
    detail = f"alert {event['alert_id']}, " if event["event"] == "alert" else ""
    return (
        f"verified {what} from unit {event['unit'][:8]}: {detail}counter {event['counter']}, "
        f"battery {event['battery_pct']}%"
    )


class Phone:
    """The wearer's phone next to the unit: verifies frames and, while
    `answering`, advertises an acknowledgement for every new alert."""

    def __init__(self, unit: VirtualUnit, known: KnownUnit, out: Callable[[str], None]) -> None:
        self.unit, self.known, self.out = unit, known, out
        self.rx = Receiver([known])
        self.answering = True
        self.unanswered: list[tuple[int, int]] = []  # (alert id, when) heard while away

    def hear(self, boot: Boot, show: bool = True) -> None:
        if show:
            transcript_boot(boot, "unit-1", self.out)
        for ad in (e for e in boot.events if e["kind"] == "advertise"):
            for event in self.rx.feed(bytes.fromhex(ad["data"]), ad["t"] / 1000):
                self.out(f"{clock(ad['t'])}  phone     {describe_event(event)}")
                if event["event"] == "alert":
                    self.unanswered.append((event["alert_id"], ad["t"]))
        if self.answering:
            for alert_id, t in self.unanswered:
                now = max(t, boot.ended_ms)
                # The twin runs a boot to its end before the phone can answer,
                # so the phone holds its acknowledgement until a retry comes
                # (at most ~61 s apart), as the acker's HOLD_S policy does.
                until = now + int(HOLD_S * 1000)
                self.unit.air(ack_ad(self.known.keys.ack, alert_id), now + 200, until)
                self.out(f"{clock(now + 200)}  phone     acknowledges alert {alert_id}")
            self.unanswered = []


def run_demo(board: Board, out: Callable[[str], None] = print) -> dict[str, int]:
    """Run the scenario; returns the unit's diagnostics at the end."""
    with tempfile.TemporaryDirectory(prefix="amr-demo-") as tmp:
        unit = VirtualUnit(Path(tmp) / "unit-1", board)
        known = provision(unit)
        phone = Phone(unit, known, out)
        out(
            f"Virtual {board.chip} unit on board {board.name} "
            f"({board.deployment} image, wake to app {board.wake_to_app_ms} ms), "
            "factory config and keys, "
            f"battery {unit.battery_mv} mV; the phone holds the unit's keys"
        )
        rng = Rng(2026)
        out("\n# Insert the cell: cold boot, heartbeat scheduled, deep sleep")
        phone.hear(unit.power_on())
        out("\n# 00:00:10 the wearer taps three times (contact bounce included);")
        out("# the phone verifies the alert and acknowledges it")
        unit.press(10_000, trace(rng, taps(rng, 3)))
        unit.run_until(30_000, on_boot=phone.hear)
        out("\n# 00:00:40 the phone is out of range; the wearer holds the button for 2 s:")
        out("# nobody acknowledges, so the unit retries, backing off to 60 s")
        phone.answering = False
        unit.press(40_000, trace(rng, [(0, 2000)]))
        unit.run_until(4 * 60_000, on_boot=phone.hear)
        out("\n# 00:04:00 the phone is back in range: it hears a retry and acknowledges")
        phone.answering = True
        unit.run_until(6 * 60_000, on_boot=phone.hear)
        beat_h = known.heartbeat_s / 3600
        out(
            f"\n# {beat_h:g} hours after the cell went in the heartbeat wakes the unit by its timer"
        )
        unit.run_until(known.heartbeat_s * 1000 + 100_000, on_boot=phone.hear)
        diag = firmware_module("diag").decode(_diag_bytes(unit))
        counters = diag.as_dict() if diag else {}
        out("\n# Diagnostics kept across deep sleep (RTC memory)")
        out("  " + ", ".join(f"{k}={v}" for k, v in counters.items()))

        out("\n# A unit whose keys and config were never written: visible fault, nothing sent")
        blank = VirtualUnit(Path(tmp) / "unit-2", board)
        transcript_boot(blank.power_on(), "unit-2", out)
        out(f"\n# Phone's receiver: {dict(sorted(phone.rx.stats.items()))}")
        return dict(counters)


def _diag_bytes(unit: VirtualUnit) -> bytes:
    saved = firmware_module("rtcmem").unpack(unit.rtc_memory())
    return bytes(saved[0]) if saved else b""
