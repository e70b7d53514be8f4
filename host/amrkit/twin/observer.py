"""An independent scanner on the twin's live radio, and a simulated day for it.

`Observer` is what an abuser's scanner app is: a bumble device scanning
passively on the radio, recording every advertising report it gets (wall
time, address and its type, PDU type, AD bytes, RSSI). It shares nothing
with the toolkit's receiver, protocol or scanner code: it knows no keys and
decodes nothing.

`watch_day` runs one unit of `amr sim` for a simulated day (deep sleep
fast-forwarded, awake time real) with alarms pressed at random times, a
receiver acknowledging as `amr listen --ack` does (decoys on), and the
observer listening throughout. The unit's own boot log gives the ground
truth (`Sent`): which payloads it put on the air and which of them were an
alert's; the analysis (amrkit.twin.linkage) uses the observer's records only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bumble.device import Advertisement

from amrkit.ack_schedule import AckSchedule
from amrkit.acker import Acker
from amrkit.ble.bumble.link import BumbleHost, VirtualRadio
from amrkit.boards import Board, load_board
from amrkit.listen import ble_source, listen
from amrkit.paths import firmware_module
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.sim import SPEED, Sim, SimUnit
from amrkit.twin.unit import Boot

POLL_S = 0.05
ENOUGH_EVERY_S = 1.0  # it reads every report heard so far: not at every poll
# Past the day's end, how long (unit clock) it waits for an alert still
# unacknowledged (a busy machine's receiver missed its first retry).
ACK_GRACE_MS = 30 * 60_000
UNIT = "unit-1"
_ALERT_LINE = re.compile(r"\[(\d+) ms\] alert (\d+) attempt (\d+): advertising")


@dataclass(frozen=True)
class Heard:
    """One advertising report, as a scanner gets it."""

    t: float  # wall clock, s
    address: str
    address_type: int  # 0 public, 1 random
    pdu: str  # ADV_IND, ADV_NONCONN_IND, ADV_SCAN_IND, ADV_DIRECT_IND or SCAN_RSP
    data: bytes
    rssi: int


def _pdu(adv: Advertisement) -> str:
    if adv.is_scan_response:
        return "SCAN_RSP"
    if adv.is_directed:
        return "ADV_DIRECT_IND"
    if adv.is_connectable:
        return "ADV_IND"
    return "ADV_SCAN_IND" if adv.is_scannable else "ADV_NONCONN_IND"


class Observer:
    """A passive scanner on a virtual radio that keeps every report."""

    def __init__(self) -> None:
        self.heard: list[Heard] = []
        self._host: BumbleHost | None = None

    async def start(self, radio: VirtualRadio) -> None:
        """Join the radio and scan (call on the radio's own loop)."""
        self._host = await radio.open_host("observer")
        self._host.device.on("advertisement", self._on_advertisement)
        # Passive: an eavesdropper sends nothing; every report, not one per address.
        await self._host.device.start_scanning(active=False, filter_duplicates=False)

    def _on_advertisement(self, adv: Advertisement) -> None:
        self.heard.append(
            Heard(
                time.time(),
                adv.address.to_string(False),
                int(adv.address.address_type),
                _pdu(adv),
                bytes(adv.data_bytes),
                adv.rssi,
            )
        )

    async def close(self) -> None:
        if self._host is not None:
            await self._host.close()
            self._host = None


@dataclass(frozen=True)
class Sent:
    """A payload the unit advertised, from its boot log (the ground truth)."""

    t_ms: int  # the unit's clock (virtual) when it went on the air
    until_ms: int  # when the next payload, or the end of advertising, replaced it
    data: bytes
    alert: int | None  # the alert id, if it was an alert's frame (burst or retry)
    attempt: int | None


_OFF_AIR = ("advertise", "advertise_stop", "radio")


def sent_frames(boots: list[Boot]) -> list[Sent]:
    """Every payload the unit advertised, with the alert it belonged to: the
    app logs "alert N attempt K" at the tick it hands that frame to the
    radio, and the radio emulation records the advertisement at that clock."""
    out = []
    for boot in boots:
        alerts: dict[int, tuple[int, int]] = {}
        for line in boot.lines:
            m = _ALERT_LINE.search(line)
            if m:
                alerts[boot.started_ms + int(m[1])] = (int(m[2]), int(m[3]))
        changes = [e for e in boot.events if e["kind"] in _OFF_AIR]
        for i, e in enumerate(changes):
            if e["kind"] == "advertise" and e["data"]:
                until = changes[i + 1]["t"] if i + 1 < len(changes) else boot.ended_ms
                alert, attempt = alerts.pop(e["t"], (None, None))
                out.append(Sent(e["t"], until, bytes.fromhex(e["data"]), alert, attempt))
        if alerts:
            raise ValueError(f"alert lines with no advertisement at their clock: {alerts}")
    return out


@dataclass(frozen=True)
class Day:
    """A simulated day (or part of one) for the observer to watch."""

    hours: float = 24.0
    alerts: int = 6  # alarms pressed, one at a random time in each of as many equal slots
    cover_per_day: int = 0
    speed: float = SPEED
    config: Mapping[str, int] = field(default_factory=dict)  # other config fields changed
    seed: int = 1  # press times and gestures


@dataclass
class Watched:
    day: Day
    heard: list[Heard]  # the observer's records
    sent: list[Sent]  # the ground truth
    raised: int  # alerts the unit raised (its log)
    acknowledged: int  # alerts the unit heard acknowledged (its log)
    events: list[dict[str, Any]]  # what the receiver reported
    wall_s: float


def press_times(day: Day) -> list[int]:
    """When each alarm is pressed (ms into the day): uniform in the middle
    of its slot, so alarms do not run into one another or the day's ends."""
    rng = random.Random(day.seed)
    slot = day.hours * 3_600_000 / max(day.alerts, 1)
    return [int(slot * (i + rng.uniform(0.1, 0.9))) for i in range(day.alerts)]


def _asleep(unit: SimUnit) -> bool:
    return unit.unit.awake_clock() is None


def _alerts(unit: SimUnit) -> tuple[int, int]:
    """Alerts raised and alerts acknowledged, by the unit's boot logs."""
    lines = [line for boot in list(unit.unit.boots) for line in boot.lines]
    raised = sum("reserved and persisted" in line for line in lines)
    return raised, sum("acknowledged by the receiver" in line for line in lines)


async def _settle(unit: SimUnit) -> None:
    while not _asleep(unit):
        await asyncio.sleep(POLL_S)


Enough = Callable[[list[Heard]], bool]


async def _run(sim: Sim, day: Day, observer: Observer, enough: Enough | None) -> Watched:
    unit = sim.units[UNIT]
    config = dict(firmware_module("config").DEFAULTS, **day.config)
    config["cover_per_day"] = day.cover_per_day
    # Provisioned again with the day's config, between boots, as in the store.
    await asyncio.to_thread(sim.command, {"cmd": "power_cut", "unit": UNIT})
    known = provision(unit.unit, config)
    events: list[dict[str, Any]] = []
    acker = Acker(sim.ble, AckSchedule(decoys=True))
    await acker.start()
    receiving = asyncio.create_task(
        listen(Receiver([known]), ble_source(transport=sim.ble), events.append, acker=acker)
    )
    began = time.time()
    try:
        reply = await asyncio.to_thread(sim.command, {"cmd": "power_on", "unit": UNIT})
        if not reply["ok"]:
            raise RuntimeError(f"the unit did not start: {reply['error']}")
        start = unit.virtual_now()
        presses = [start + t for t in press_times(day)]
        end = start + int(day.hours * 3_600_000)
        heard_enough = enough or (lambda _heard: True)
        done, checked = False, -math.inf
        grace_end: int | None = None  # the day is over once its alerts are acknowledged
        while True:
            if unit.virtual_now() >= end and _asleep(unit) and done:
                if grace_end is None:
                    grace_end = unit.virtual_now() + ACK_GRACE_MS
                raised, acknowledged = _alerts(unit)
                if unit.virtual_now() >= grace_end or acknowledged >= raised:
                    break
            if not done and time.monotonic() - checked >= ENOUGH_EVERY_S:
                done, checked = heard_enough(list(observer.heard)), time.monotonic()
            if presses and unit.virtual_now() >= presses[0]:
                presses.pop(0)
                seed = day.seed * 1000 + len(presses)
                command = {"cmd": "taps", "unit": UNIT, "count": 3, "seed": seed}
                await asyncio.to_thread(sim.command, command)
            if receiving.done():
                receiving.result()  # a receiver that failed says why
            await asyncio.sleep(POLL_S)
        await sim.radio.acall(observer.close())
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
        await acker.close()
    await _settle(unit)  # a boot begun meanwhile is in the log once it ends
    return Watched(
        day,
        list(observer.heard),
        sent_frames(list(unit.unit.boots)),
        *_alerts(unit),
        events,
        time.time() - began,
    )


def watch_day(
    day: Day,
    board: Board | None = None,
    directory: Path | None = None,
    *,
    enough: Enough | None = None,
) -> Watched:
    """Run `day` on one twin unit with a receiver and the observer; with
    `enough`, the day goes on past its hours until that says the observer
    has heard enough (a test that needs so many sequences, whatever the
    firmware's cover rate). Either way it ends with every alert raised
    acknowledged, waiting up to ACK_GRACE_MS of the unit's clock for one
    whose first retry the receiver missed."""
    with Sim(1, board or load_board(), directory, speed=day.speed) as sim:
        observer = Observer()
        sim.radio.call(observer.start(sim.radio.radio))
        try:
            return asyncio.run(_run(sim, day, observer, enough))
        finally:
            sim.radio.call(observer.close())
