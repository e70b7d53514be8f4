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

Some commands take an argument (bytes); provision, wipe, test_mode and
service are wired-only (the firmware's table marks them, amrkit.contract.WIRED_ONLY
lists them): the unit refuses them over BLE, and BleLink never sends them.
Keys go to a unit only inside provision's argument, and never come back:
no reply, message or exception here carries one.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

from amrkit.paths import firmware_module
from amrkit.protocol import PROOF_NONCE_LENGTH, KnownUnit, UnitKeys, proof_mac

FORCE = 0x01  # provision's flags byte: go ahead despite pending alerts or a lost state
TEST_MODE_MAX_S = 600


class UnitError(RuntimeError):
    """The unit could not be reached, or did not answer sensibly."""


class KeyProofError(UnitError):
    """The unit could not prove it holds the keys it was asked about."""


def provisioning_record(
    unit_id: bytes, generation: int, keys: UnitKeys, config: Mapping[str, int]
) -> bytes:
    """The payload of the unit's provisioning record (firmware/amr/
    provisioning.py): generation, unit id, the three keys and the config,
    encoded and validated by the firmware's own code."""
    if len(unit_id) != 8:
        raise ValueError("a unit id is 8 bytes")
    prov = firmware_module("provisioning")
    store = firmware_module("store")
    try:
        payload: bytes = prov.encode_provisioning(
            generation, unit_id + keys.enc + keys.id + keys.ack, dict(config)
        )
    except store.StoreFault as fault:  # the config's own words; never a key
        raise ValueError(f"cannot provision: {fault.reason}") from None
    return payload


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

    async def command(self, name: str, arg: bytes | None = None) -> dict[str, Any]:
        """Run one service command on the unit, with its argument if it
        takes one; its JSON reply."""
        ...


class Unit:
    """A unit's service commands, over any link."""

    def __init__(self, link: Link) -> None:
        self.link = link

    async def run(self, name: str, arg: bytes | None = None) -> dict[str, Any]:
        """Any command of the firmware's table, by name."""
        reply = await self.link.command(name, arg)
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

    async def provision(
        self,
        unit_id: bytes,
        generation: int,
        keys: UnitKeys,
        config: Mapping[str, int],
        *,
        force: bool = False,
    ) -> dict[str, Any]:
        """Give the unit its id, keys (generation `generation`, above its
        current one unless it is blank or wiped) and config, in one record
        (wired only). Refused while alerts are pending unless `force`.
        Returns {"provisioned", "unit_id", "key_generation", "counter_hwm"},
        checked against what was asked."""
        record = provisioning_record(unit_id, generation, keys, config)
        reply = await self.run("provision", bytes((FORCE if force else 0,)) + record)
        if reply.get("unit_id") != unit_id.hex() or reply.get("key_generation") != generation:
            raise UnitError(
                f"{self.link.name} answered provision with unit {reply.get('unit_id')} "
                f"generation {reply.get('key_generation')}, not {unit_id.hex()} {generation}"
            )
        return reply

    async def challenge(self, nonce: bytes) -> dict[str, Any]:
        """The unit's answer to a 16-byte challenge: {"unit_id",
        "key_generation", "mac"} (protocol §11)."""
        return await self.run("challenge", nonce)

    async def prove_keys(self, known: KnownUnit, generation: int) -> dict[str, Any]:
        """Check, with a fresh random nonce, that the unit holds the keys of
        `known` as generation `generation`; KeyProofError if it does not."""
        nonce = os.urandom(PROOF_NONCE_LENGTH)
        try:
            reply = await self.challenge(nonce)
        except KeyProofError:
            raise
        except UnitError as err:
            if "no keys" in str(err):
                raise KeyProofError(
                    f"{self.link.name} holds no keys (not provisioned, or wiped): "
                    f"it does not hold the keys of generation {generation}"
                ) from None
            raise
        expected = proof_mac(known.keys, bytes.fromhex(known.unit), generation, nonce)
        got = reply.get("mac")
        if reply.get("unit_id") != known.unit or got != expected.hex():
            held = f"unit {reply.get('unit_id')} generation {reply.get('key_generation')}"
            raise KeyProofError(
                f"{self.link.name} does not hold the keys of unit {known.unit} generation "
                f"{generation} (it says it is {held})"
            )
        return {"unit_id": known.unit, "key_generation": generation, "proved": True}

    async def wipe(self) -> dict[str, Any]:
        """Erase keys, config, bonds, pending alerts and test mode (wired
        only); the counters' high-water mark stays. Verified afterwards with
        info: UnitError if the unit still says it is provisioned."""
        reply = await self.run("wipe")
        after = await self.info()
        state = after.get("state")
        pending = (
            state.get("pending_alerts", 0) + state.get("pending_tests", 0)
            if isinstance(state, dict)
            else 0
        )
        if after.get("provisioned") or pending or after.get("bonds"):
            raise UnitError(
                f"{self.link.name}: the wipe did not take (provisioned "
                f"{after.get('provisioned')}, {pending} pending, {after.get('bonds')} bonds); "
                "run it again"
            )
        return reply

    async def test_mode(self, seconds: int) -> dict[str, Any]:
        """For `seconds` (at most 600; 0 ends it) an alarm gesture sends test
        presses, never alerts (wired only). Survives deep sleep, not a power
        loss."""
        if not 0 <= seconds <= TEST_MODE_MAX_S:
            raise ValueError(f"test mode lasts 0 to {TEST_MODE_MAX_S} s, not {seconds}")
        return await self.run("test_mode", struct.pack("<H", seconds))

    async def open_service(self) -> dict[str, Any]:
        """Open service mode without the wearer's gesture (wired only): the
        unit opens it at its next wake, once its radio is quiet, for 60 s.
        Refused without keys or with alerts pending."""
        return await self.run("service")

    async def bonds(self) -> dict[str, Any]:
        """The bonded hosts: {"bonds": count, "hosts": [fingerprint, ...],
        "damaged": bool}; a fingerprint is 8 hex digits, never a secret."""
        return await self.run("bonds")

    async def clear_bonds(self) -> dict[str, Any]:
        """Forget every bonded host (power-fail-safe); {"bonds": 0,
        "cleared": how many were}. Checked afterwards with bonds: UnitError
        if any is left."""
        reply = await self.run("clear_bonds")
        after = await self.bonds()
        if after.get("bonds"):
            raise UnitError(
                f"{self.link.name}: clearing the bonds did not take ({after.get('bonds')} "
                "left); run it again"
            )
        return reply


async def readout(unit: Unit) -> dict[str, Any]:
    """What `amr info` reports, the same fields over every link."""
    report = await unit.info()
    report.update(await unit.battery())
    report["diagnostics"] = await unit.diagnostics()
    return report
