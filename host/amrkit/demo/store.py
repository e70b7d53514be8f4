"""`amr demo --store`: the store's day with three new boards on its jig.

Each step is a verb of the toolkit (`amr flash`, `provision`, `check`,
`bundle export`, `units issue/return`, `wipe`, `audit verify`), run through
the same workflows those commands call, against three blank twin units:
real esptool and mpremote's transport on their serial ports, the check's
own receiver and the wearer's receiver on the virtual radio, and a
throwaway registry. The story prints the command a technician would type
before each step, and what came of it as sentences and tables.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amrkit import build, flashing
from amrkit.boards import Board
from amrkit.bundle import read_bundle
from amrkit.listen import ble_source, session
from amrkit.receiver import Receiver
from amrkit.registry import MasterKey, Registry, State
from amrkit.release import read_release_manifest
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim
from amrkit.unit import Unit, readout
from amrkit.unit.ble import BleLink
from amrkit.unit.wired import WiredLink
from amrkit.workflows.bundles import export_bundle
from amrkit.workflows.check import acceptance_check
from amrkit.workflows.provision import provision
from amrkit.workflows.registration import record_flash
from amrkit.workflows.wipe import wipe

ACTOR = "store-tech-1"
CASE = "PV-2026-0412"
RECEIVER = "RX-PHONE-01"
PASSPHRASE = "demo passphrase, never a real one"
WORN_CELL_MV = 2300  # below the unit's 2450 mV warning level under load
LISTEN_S = 12.0


def _table(rows: list[list[Any]], head: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [
        text.rstrip()
        for text in [line.format(*head), line.format(*("-" * w for w in widths))]
        + [line.format(*map(str, r)) for r in rows]
    ]


def run_store_demo(board: Board, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Tell the story; returns what each unit ended as and the registry's audit."""
    started = time.monotonic()

    def say(text: str) -> None:
        out(f"[{time.monotonic() - started:5.1f} s] {text}")

    def cmd(text: str) -> None:
        out(f"        $ {text}")

    with tempfile.TemporaryDirectory(prefix="amr-store-") as tmp:
        root = Path(tmp)
        app = build.build(board, root / "build")
        release = read_release_manifest(app)
        with (
            Sim(3, board, root / "jig", blank=True, speed=1.0) as sim,
            Registry.open(
                f"sqlite:///{root / 'registry.sqlite'}", MasterKey.generate(), create=True
            ) as registry,
        ):
            ports = {name: str(u.announce()["serial"]) for name, u in sim.units.items()}
            say("three new boards on the jig, blank (no MicroPython, no app); a new registry")

            def wired(name: str, work: Callable[[Unit], Any]) -> Any:
                async def run() -> Any:
                    async with WiredLink(ports[name]) as link:
                        return await work(Unit(link))

                return asyncio.run(run())

            # -- flash ------------------------------------------------------
            cmd("amr flash " + " ".join(f"--port {p}" for p in ports.values()))
            flashed = flashing.flash_units(list(ports.values()), stand_in_image(), app, board.chip)
            ids: dict[str, str] = {}
            rows = []
            for name, port in ports.items():
                result = flashed[port]
                if isinstance(result, flashing.FlashError):
                    raise RuntimeError(f"{name}: {result}")
                unit = record_flash(
                    registry, ACTOR, mac=result.mac, board=board.name, chip=result.chip,
                    app_version=result.version, app_hash=result.app_hash,
                )  # fmt: skip
                ids[name] = unit.unit_id
                rows.append([name, result.mac, unit.unit_id, result.app_hash[:12],
                             f"{result.seconds:.1f} s"])  # fmt: skip
            say("flashed in parallel (esptool with its stub), app deployed and hashed on each:")
            for line in _table(rows, ["unit", "MAC", "unit id", "app hash", "took"]):
                out("        " + line)

            # -- provision ---------------------------------------------------
            for name in ports:
                cmd(f"amr provision --port {ports[name]}")
                done = wired(
                    name,
                    lambda unit: provision(unit, registry, ACTOR, label_dir=root / "labels"),
                )
                label = done.label.name if done.label else "-"
                say(
                    f"{name}: keys of generation {done.generation} made on the host, written "
                    f"over the cable, proved by challenge; label {label}"
                )

            # -- check --------------------------------------------------------
            sim.command({"cmd": "battery", "unit": "unit-3", "mv": WORN_CELL_MV})
            say(f"unit-3 has a worn cell ({WORN_CELL_MV} mV)")
            verdicts = {}
            for name in ports:

                def press(text: str, name: str = name) -> None:
                    say(f"check: {text}; the technician taps {name} three times")
                    threading.Timer(
                        1.0, sim.command, ({"cmd": "taps", "unit": name, "count": 3},)
                    ).start()

                cmd(f"amr check --port {ports[name]} --transport {sim.ble}")
                checked = asyncio.run(
                    acceptance_check(
                        ports[name], registry, ACTOR, board=board, release=release,
                        transport=sim.ble, press_limit_s=30.0, prompt=press,
                    )
                )  # fmt: skip
                verdicts[name] = checked.passed
                rows = [
                    [c["name"], "pass" if c["passed"] else "FAIL", c["measured"]]
                    for c in checked.report["checks"]
                ]
                say(
                    f"{name}: {'PASSED' if checked.passed else 'FAILED'}, signed report "
                    f"{checked.report_id} in the registry:"
                )
                for line in _table(rows, ["check", "result", "measured"]):
                    out("        " + line)

            # -- issue ----------------------------------------------------------
            for name in ("unit-1", "unit-3"):
                cmd(f"amr units issue {ids[name]} --case {CASE}")
                try:
                    with registry.step(ACTOR, "issue", ids[name]) as step:
                        step.transition(State.ISSUED, case_ref=CASE)
                    say(f"{name} issued under case {CASE} (no personal data in the registry)")
                except Exception as err:  # the registry's refusal, as the CLI prints it
                    say(f"{name} refused: {err}")
            cmd(f"amr bundle export --unit {ids['unit-1']} --receiver {RECEIVER} --out rx.bundle")
            exported = export_bundle(
                registry, ACTOR, [ids["unit-1"]], RECEIVER, root / "rx.bundle", PASSPHRASE
            )
            say(
                f"bundle for {RECEIVER}: {exported.path.name}, sealed under a passphrase"
                + (", and a QR code of it for the phone" if exported.qr else "")
            )

            # -- the wearer presses ------------------------------------------
            receiver = Receiver(read_bundle(exported.path, PASSPHRASE))
            heard: list[dict[str, Any]] = []

            def on_event(event: dict[str, Any]) -> None:
                if event["event"] == "alert":
                    heard.append(event)
                    say(
                        f"receiver: verified ALERT {event['alert_id']} from unit "
                        f"{event['unit']} ({event['rssi']} dBm), acknowledging over the air"
                    )

            async def wearer() -> None:
                listening = asyncio.create_task(
                    session(receiver, ble_source(transport=sim.ble), on_event,
                            ack_transport=sim.ble, duration_s=LISTEN_S)
                )  # fmt: skip
                await asyncio.sleep(1.0)
                say("unit-1: the wearer taps the button three times")
                await asyncio.to_thread(sim.command, {"cmd": "taps", "unit": "unit-1", "count": 3})
                await listening

            asyncio.run(wearer())
            receiver.close()
            after = wired("unit-1", readout)
            say(
                f"unit-1: {after['state']['pending_alerts']} alerts pending (acknowledged), "
                f"{after['diagnostics']['alerts']} raised, battery {after['battery_mv']} mV"
            )

            # -- service mode over BLE -------------------------------------------
            say("unit-2: the technician makes the maintenance gesture (three double taps)")
            sim.command({"cmd": "service", "unit": "unit-2"})

            async def over_air() -> dict[str, Any]:
                async with BleLink([registry.keys(ids["unit-2"])], sim.ble) as link:
                    return {**await link.device_information(), **await readout(Unit(link))}

            ble = asyncio.run(over_air())
            say(
                f"bleak: found unit-2 by its token, paired with the passkey from its keys; "
                f"{ble['manufacturer']} {ble['model']} firmware {ble['firmware']}, battery "
                f"{ble['battery_mv']} mV ({ble['loaded_mv']} mV under radio load)"
            )

            # -- return and wipe ------------------------------------------------------
            cmd(f"amr units return {ids['unit-1']}")
            with registry.step(ACTOR, "return", ids["unit-1"]) as step:
                step.transition(State.RETURNED)
            cmd(f"amr wipe --port {ports['unit-1']}")
            wiped = wired("unit-1", lambda unit: wipe(unit, registry, ACTOR))
            say(
                f"unit-1 returned and wiped: keys, config and bonds erased, the challenge for "
                f"generation {wiped.generation} now fails, the registry's copy destroyed"
            )

            # -- the registry ------------------------------------------------------------
            cmd("amr audit verify")
            problems = registry.verify_audit()
            entries = registry.audit()
            say(
                f"audit log: {len(entries)} rows, hash chain "
                + ("intact" if not problems else "BROKEN: " + "; ".join(problems))
            )
            cmd("amr units list")
            units = registry.list_units()
            names = {v: k for k, v in ids.items()}
            for line in _table(
                [[names[u.unit_id], u.unit_id, u.state.value, u.generation] for u in units],
                ["unit", "unit id", "state", "key generation"],
            ):
                out("        " + line)
            story = {
                "states": {names[u.unit_id]: u.state.value for u in units},
                "checks": verdicts,
                "alerts_heard": len(heard),
                "audit_rows": len(entries),
                "audit_problems": problems,
                "ble": ble,
            }
    say("the jig, the radio and the registry are gone: nothing was left running")
    return story
