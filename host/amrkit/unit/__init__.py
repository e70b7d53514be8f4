"""One unit, the same over every link.

The firmware keeps its service commands in one table (firmware/amr/
commands.py) reachable over the wired link (the raw REPL) and over BLE in
service mode (an authenticated control point). A `Link` carries one command
and brings back its JSON reply; `Unit` gives the commands names and turns a
unit's refusal into a `UnitError`. Workflows (info, and later flash,
provision, check, wipe) depend on `Unit` alone, never on how it is reached:

    async with WiredLink("/dev/ttyUSB0") as link:        # amrkit.unit.wired
        report = await readout(Unit(link))
    async with BleLink(units, "usb:0") as link:           # amrkit.unit.ble
        report = await readout(Unit(link))
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Protocol, Self


class UnitError(RuntimeError):
    """The unit could not be reached, or did not answer sensibly."""


class RadioUnavailable(UnitError):
    """The link's own radio (a BLE adapter or bumble transport) cannot be
    opened, so no unit was even looked for; says what to check."""


def decode_reply(where: str, name: str, data: bytes) -> dict[str, Any]:
    """A command's reply as the firmware sends it on either link: one JSON
    object. Anything else is a UnitError that quotes the start of it."""
    try:
        reply = json.loads(data)
    except ValueError as err:
        text = data.decode(errors="replace")[:200]
        raise UnitError(f"{where} answered {name} with something else: {text!r}") from err
    if not isinstance(reply, dict):
        raise UnitError(f"{where} answered {name} with {type(reply).__name__}, not a reply")
    return reply


class Link(Protocol):
    """How a unit is reached; opened with `async with`."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    @property
    def name(self) -> str:
        """Where the unit is, for messages: a port, or a unit id over BLE."""
        ...

    async def command(self, name: str) -> dict[str, Any]:
        """Run one service command on the unit; its JSON reply."""
        ...


class Unit:
    """A unit's service commands, over any link."""

    def __init__(self, link: Link) -> None:
        self.link = link

    async def run(self, name: str) -> dict[str, Any]:
        """Any command of the firmware's table, by name."""
        reply = await self.link.command(name)
        if "error" in reply:
            raise UnitError(f"{self.link.name} refused {name}: {reply['error']}")
        return reply

    async def info(self) -> dict[str, Any]:
        """Board, firmware, unit id, battery, button, last fault, and whether
        config, counter state and keys are sound (never a key)."""
        return await self.run("info")

    async def battery(self) -> dict[str, Any]:
        """Millivolts and percent, and the cell under radio load."""
        return await self.run("battery")

    async def diagnostics(self) -> dict[str, Any]:
        return await self.run("diagnostics")

    async def self_test(self) -> dict[str, Any]:
        """{"pass": bool, "checks": {name: "ok" or what is wrong}}."""
        return await self.run("self_test")

    async def clear_diagnostics(self) -> dict[str, Any]:
        """Start the counters afresh; the new counters."""
        return await self.run("clear_diagnostics")


async def readout(unit: Unit) -> dict[str, Any]:
    """What `amr info` reports, the same fields over every link."""
    report = await unit.info()
    report.update(await unit.battery())
    report["diagnostics"] = await unit.diagnostics()
    return report
