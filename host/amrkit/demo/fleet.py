"""`amr demo --fleet`: the toolkit's tools against three virtual units.

Flash one unit with real esptool and deploy the app with real mpremote,
press its button, show the receiver verifying (and acknowledging) the alert
heard over the virtual radio, read the unit's battery and diagnostics over
its serial port, open service mode with the maintenance gesture and read
battery and device information over BLE (bleak, passkey pairing), and stop
everything.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial  # type: ignore[import-untyped]
from esptool.cmds import attach_flash, detect_chip, reset_chip, write_flash  # type: ignore[import-untyped]
from esptool.loader import DEFAULT_TIMEOUT  # type: ignore[import-untyped]

from amrkit import build
from amrkit.boards import Board
from amrkit.listen import ble_source, session
from amrkit.protocol import KnownUnit
from amrkit.receiver import Receiver
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim
from amrkit.unit import Unit, readout
from amrkit.unit.ble import BleLink
from amrkit.unit.wired import WiredLink

LISTEN_S = 8.0


async def _read_ble(units: list[KnownUnit], transport: str) -> dict[str, Any]:
    """The standard services and the service commands, in one session."""
    async with BleLink(units, transport) as link:
        assert link.found is not None
        return {
            "unit_id": link.found.unit.unit,
            **await link.device_information(),
            **await readout(Unit(link)),
        }


async def _read_wired(port: str) -> dict[str, Any]:
    async with WiredLink(port) as link:
        return await readout(Unit(link))


def run_fleet_demo(board: Board, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run it; returns the unit's service readout at the end."""
    started = time.monotonic()

    def say(text: str) -> None:
        out(f"[{time.monotonic() - started:5.1f} s] {text}")

    with tempfile.TemporaryDirectory(prefix="amr-fleet-") as tmp, Sim(3, board, Path(tmp)) as sim:
        for sim_unit in sim.units.values():
            line = sim_unit.announce()
            say(f"{line['unit']}: serial {line['serial']}, radio {line['ble']}")
        unit = sim.units["unit-1"]
        url = str(unit.announce()["serial"])

        say("esptool: flashing unit-1 through its serial port")
        esp = detect_chip(serial.serial_for_url(url, timeout=DEFAULT_TIMEOUT))
        try:
            mac = ":".join(f"{b:02x}" for b in esp.read_mac())
            say(f"esptool: {esp.get_chip_description()}, MAC {mac}")
            attach_flash(esp)
            write_flash(esp, [(0x0, stand_in_image())], compress=True)
            reset_chip(esp, "hard-reset")
        finally:
            esp._port.close()
        say("esptool: written, verified by MD5, hard-reset into MicroPython")

        app = build.build(board, Path(tmp) / "build")
        mpremote = str(Path(sys.executable).parent / "mpremote")
        for args in (["fs", "cp", "-r", "amr", ":"], ["fs", "cp", "main.py", ":"]):
            subprocess.run(
                [mpremote, "connect", url, "resume", *args],
                cwd=app,
                check=True,
                capture_output=True,
                timeout=120,
            )
        size = build.bundle_size(app)[1]
        say(f"mpremote: app deployed ({size} bytes of .mpy) and unit-1 rebooted")
        sim.command({"cmd": "power_on", "unit": "unit-1"})

        receiver = Receiver([u.known for u in sim.units.values() if u.known])
        events: list[dict[str, Any]] = []

        def heard(event: dict[str, Any]) -> None:
            events.append(event)
            if event["event"] == "alert":
                say(
                    f"receiver: verified ALERT {event['alert_id']} from unit {event['unit'][:8]} "
                    f"(battery {event['battery_pct']}%), acknowledging over the air"
                )

        async def scene() -> None:
            task = asyncio.create_task(
                session(
                    receiver,
                    ble_source(transport=sim.ble),
                    heard,
                    ack_transport=sim.ble,
                    duration_s=LISTEN_S,
                )
            )
            await asyncio.sleep(1.0)
            say("unit-1: the wearer taps the button three times")
            await asyncio.to_thread(sim.command, {"cmd": "taps", "unit": "unit-1", "count": 3})
            await task

        asyncio.run(scene())
        acked = any("acknowledged" in line for b in unit.unit.boots for line in b.lines)
        say(f"unit-1: {'stopped retrying: acknowledged' if acked else 'still retrying'}")

        report = asyncio.run(_read_wired(url))
        say(
            f"serial readout: battery {report['battery_mv']} mV ({report['battery_pct']}%), "
            f"keys {report['keys']}, config {report['config']}"
        )
        diag = report["diagnostics"]
        say(
            f"diagnostics: boots={diag['boots']} presses={diag['presses']} alerts={diag['alerts']} "
            f"frames_sent={diag['frames_sent']} faults={diag['faults']}"
        )
        say(f"receiver: {dict(sorted(receiver.stats.items()))}")

        say("unit-1: the technician makes the maintenance gesture (three double taps)")
        sim.command({"cmd": "service", "unit": "unit-1"})
        known = [u.known for u in sim.units.values() if u.known]
        ble = asyncio.run(_read_ble(known, sim.ble))
        say(
            f"bleak: found unit {ble['unit_id'][:8]} by its token, paired (LE Secure "
            f"Connections, passkey from its keys), battery {ble['battery_pct']}%, "
            f"{ble['manufacturer']} {ble['model']} firmware {ble['firmware']} on {ble['hardware']}"
        )
        say(
            f"control point: the same commands as over serial: battery {ble['battery_mv']} mV, "
            f"{ble['loaded_mv']} mV under radio load, last fault {ble['last_fault']}, "
            f"boots={ble['diagnostics']['boots']}"
        )
        report["ble"] = ble
    say("all virtual units, ports and the radio stopped")
    return report
