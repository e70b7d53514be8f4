"""Many units on one radio, many pressed at once: what `amr listen` makes of it.

A fleet of twin units runs the real firmware on the virtual clock; each
routine unit's first heartbeat and each pressed unit's alert (burst and
retries) are recorded as spans on the air. The spans are then played on
the twin's live radio, one bumble beacon per unit, on the wall clock
(routine frames spread over the run, every press at the same moment), while
`amr listen --transport ... --webhook ...` runs as a subprocess, as a
gateway would, forwarding to a local endpoint. The report says whether
every alert was received, verified and forwarded, whether anything else
raised one, the receiver's CPU share and each alert's latency from its
first frame on the air to its event line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from amrkit.ble.bumble import RadioThread
from amrkit.boards import Board, load_board
from amrkit.bundle import write_bundle
from amrkit.protocol import KnownUnit
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.receivers import Span, spans
from amrkit.twin.unit import VirtualUnit

PASSPHRASE = "air load"


@dataclass(frozen=True)
class Timing:
    """When things go on the air, in s from the start of play."""

    spread_s: float = 30.0  # routine frames start anywhere in this stretch
    press_at_s: float = 8.0  # every pressed unit's first alert frame
    alert_s: float = 20.0  # how much of each alert (burst, first retries) is played


SHORT = Timing(4.0, 1.0, 9.0)  # the burst and the first retry


@dataclass
class UnitAir:
    known: KnownUnit
    spans: list[Span]  # ms from the start of play
    pressed: bool


@dataclass
class LoadReport:
    units: int
    pressed: int
    routine_frames: int = 0
    alert_frames: int = 0
    alerts_expected: set[tuple[str, int]] = field(default_factory=set)
    alerts_printed: set[tuple[str, int]] = field(default_factory=set)
    alerts_forwarded: set[tuple[str, int]] = field(default_factory=set)
    other_units_alerting: int = 0  # alerts from units that were not pressed
    events: int = 0
    latency_s: list[float] = field(default_factory=list)
    receiver_cpu_s: float = 0.0
    wall_s: float = 0.0
    exit_code: int | None = None
    stderr: str = ""

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latency_s)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

        return {
            "units": self.units,
            "pressed_at_once": self.pressed,
            "routine_frames": self.routine_frames,
            "alert_frames": self.alert_frames,
            "alerts_expected": len(self.alerts_expected),
            "alerts_printed": len(self.alerts_printed & self.alerts_expected),
            "alerts_forwarded": len(self.alerts_forwarded & self.alerts_expected),
            "false_alerts": self.other_units_alerting,
            "events": self.events,
            "latency_s": {"p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else None},
            "receiver_cpu_s": round(self.receiver_cpu_s, 2),
            "receiver_cpu_pct": round(100 * self.receiver_cpu_s / self.wall_s, 1)
            if self.wall_s
            else None,
            "wall_s": round(self.wall_s, 1),
        }


def _record_unit(
    directory: Path, board: Board, index: int, pressed: bool, seed: int, timing: Timing
) -> UnitAir:
    unit = VirtualUnit(directory / f"unit-{index}", board)
    known = provision(unit)
    unit.power_on()
    rng = random.Random(seed * 1000 + index)
    if pressed:
        start = unit.clock_ms + 1_000
        gesture = Rng(rng.getrandbits(32))
        unit.press(start, trace(gesture, taps(gesture, 3)))
        boots = unit.run_until(start + int(timing.alert_s * 1000) + 5_000)
        air = [s for b in boots for s in spans(b)]
        first = air[0].start_ms
        offset = timing.press_at_s * 1000 - first
        air = [s for s in air if s.start_ms - first < timing.alert_s * 1000]
    else:
        boots = unit.run_until(unit.clock_ms + 2 * known.heartbeat_s * 1000)
        air = [s for b in boots for s in spans(b)][:1]  # its first routine frame
        offset = rng.uniform(0, timing.spread_s * 1000) - air[0].start_ms
    shifted = [Span(s.start_ms + offset, s.end_ms + offset, s.interval_ms, s.data) for s in air]
    return UnitAir(known, shifted, pressed)


def record_fleet(
    directory: Path,
    units: int,
    pressed: int,
    board: Board | None = None,
    seed: int = 1,
    timing: Timing = Timing(),
) -> list[UnitAir]:
    """Run `units` twin units; the first `pressed` of them raise an alarm."""
    board = board or load_board()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(
            pool.map(
                lambda i: _record_unit(directory, board, i, i < pressed, seed, timing),
                range(units),
            )
        )


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def _endpoint() -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []
    handler = type("Webhook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


async def _play(rt: RadioThread, fleet: list[UnitAir], t0: float, on_air: dict[str, float]) -> None:
    """Every unit's spans on its own beacon, on the wall clock from t0."""

    async def one(index: int, unit: UnitAir) -> None:
        beacon = None
        for span in unit.spans:
            await asyncio.sleep(max(0.0, t0 + span.start_ms / 1000 - time.monotonic()))
            data = bytes.fromhex(span.data)
            if beacon is None:
                beacon = await rt.radio.beacon(data, name=f"unit-{index}")
            else:
                await beacon.start(data)
            if unit.pressed:
                on_air.setdefault(unit.known.unit, time.monotonic())
            await asyncio.sleep(max(0.0, t0 + span.end_ms / 1000 - time.monotonic()))
            await beacon.stop()

    await asyncio.gather(*(one(i, u) for i, u in enumerate(fleet)))


def _alerts_in(unit: UnitAir) -> set[tuple[str, int]]:
    """(unit, alert id) of the alerts its recorded frames carry, verified offline."""
    receiver = Receiver([unit.known])
    return {
        (event["unit"], event["alert_id"])
        for span in unit.spans
        for event in receiver.feed(bytes.fromhex(span.data), span.start_ms / 1000)
        if event["event"] == "alert"
    }


def run_load(
    directory: Path,
    units: int,
    pressed: int,
    board: Board | None = None,
    seed: int = 1,
    timing: Timing = Timing(),
) -> LoadReport:
    """The whole run of the module doc."""
    directory.mkdir(parents=True, exist_ok=True)
    fleet = record_fleet(directory / "fleet", units, pressed, board, seed, timing)
    report = LoadReport(units, pressed)
    for unit in fleet:
        if unit.pressed:
            report.alert_frames += len(unit.spans)
            report.alerts_expected |= _alerts_in(unit)
        else:
            report.routine_frames += len(unit.spans)
    bundle = directory / "gateway.bundle"
    write_bundle(bundle, [u.known for u in fleet], PASSPHRASE)
    end_s = max(s.end_ms for u in fleet for s in u.spans) / 1000 + 3.0
    server, forwarded = _endpoint()
    printed: list[tuple[float, dict[str, Any]]] = []
    on_air: dict[str, float] = {}
    with RadioThread() as rt:
        hci = rt.call(rt.radio.serve_tcp())
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        listener = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "amr"),
                "listen",
                "--bundle",
                str(bundle),
                "--state",
                str(directory / "gateway.sqlite"),
                "--transport",
                hci.spec,
                "--webhook",
                f"http://127.0.0.1:{server.server_address[1]}/events",
                "--json",
                "--duration",
                str(end_s + 2.0),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "AMR_BUNDLE_PASSPHRASE": PASSPHRASE},
        )
        assert listener.stdout is not None

        def read() -> None:
            for line in listener.stdout:  # type: ignore[union-attr]
                if line.strip():
                    printed.append((time.monotonic(), json.loads(line)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2.0)  # the listener's scan is up
        t0 = time.monotonic()
        rt.call(_play(rt, fleet, t0, on_air), timeout=end_s + 30)
        report.exit_code = listener.wait(timeout=end_s + 60)
        reader.join(timeout=10)
        report.stderr = listener.stderr.read() if listener.stderr else ""
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report.wall_s = time.monotonic() - t0
    server.shutdown()
    report.receiver_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pressed_units = {u.known.unit for u in fleet if u.pressed}
    report.events = len(printed)
    first_heard: dict[str, float] = {}
    for at, event in printed:
        if event["event"] == "alert":
            report.alerts_printed.add((event["unit"], event["alert_id"]))
            first_heard.setdefault(event["unit"], at)
            if event["unit"] not in pressed_units:
                report.other_units_alerting += 1
    for event in forwarded:
        if event.get("event") == "alert":
            report.alerts_forwarded.add((event["unit"], event["alert_id"]))
    report.latency_s = [first_heard[u] - on_air[u] for u in first_heard if u in on_air]
    return report
