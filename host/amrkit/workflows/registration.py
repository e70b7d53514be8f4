"""Which unit of the registry is on the cable, and flashes recorded.

A unit is known by its unit id once provisioned, and before that by its
factory MAC (what esptool and the firmware's `info` both read). A unit
flashed for the first time is added to the registry with a fresh random
unit id: the id says nothing about the chip or the person who carries it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from amrkit.registry import Registry, RegistryError, State, UnitRecord, UnknownUnit


class NotRegistered(RegistryError):
    """The unit on the cable is not in the registry."""


def find_by_mac(registry: Registry, mac: str) -> UnitRecord | None:
    """The registry's unit with this factory MAC; retired units do not count."""
    wanted = mac.lower()
    for record in registry.list_units():
        if record.mac == wanted and record.state is not State.RETIRED:
            return record
    return None


def unit_on_cable(registry: Registry, info: dict[str, Any]) -> UnitRecord:
    """The registry's record of the unit whose `info` this is."""
    unit_id = info.get("unit_id")
    if unit_id:
        with contextlib.suppress(UnknownUnit):
            return registry.get(unit_id)
    mac = str(info.get("mac") or "")
    by_mac = find_by_mac(registry, mac) if mac else None
    if by_mac is not None:
        return by_mac
    raise NotRegistered(
        f"the unit on the cable (MAC {mac or 'unknown'}"
        + (f", unit id {unit_id}" if unit_id else "")
        + ") is not in the registry: flash it with amr flash, which records it"
    )


def record_flash(
    registry: Registry,
    actor: str,
    *,
    mac: str,
    board: str,
    chip: str,
    app_version: str,
    app_hash: str,
) -> UnitRecord:
    """Record a unit just flashed: added (in stock) if new, then flashed."""
    known = find_by_mac(registry, mac)
    unit_id = known.unit_id if known is not None else os.urandom(8).hex()
    with registry.step(actor, "flash", unit_id) as step:
        if known is None:
            step.add_unit(board, chip, mac)
        step.record_app(app_version, app_hash)
        step.transition(State.FLASHED)
    return registry.get(unit_id)


def may_flash(registry: Registry, mac: str) -> str | None:
    """None if the unit with this MAC may be flashed, else why not (an issued
    unit is not overwritten: it is returned first)."""
    from amrkit.registry.lifecycle import refusal

    known = find_by_mac(registry, mac)
    if known is None:
        return None
    why = refusal(known.state, State.FLASHED)
    return None if why is None else f"unit {known.unit_id} is {known.state}: {why}"
