"""Provisioning: new keys and config for a unit, over its wired link.

The keys are made here, on the host, sealed into the registry under the
master key, and written to the unit over the cable only (the firmware
refuses `provision` over the air). The unit then proves it holds them by
challenge and response; they are never read back. Each provisioning is a
new key generation, so a unit provisioned again has keys that no earlier
receiver holds.

The unit's diagnostics start afresh (a unit boots into a fault state until
it has keys; what they said is kept in the audit log). All of it is one
registry step: if the unit refuses, fails or cannot prove
the keys, the registry is as it was. A generation the unit has already
taken is never given again (the next attempt starts above it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amrkit.label import write_label
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, UnitKeys
from amrkit.registry import Registry, State
from amrkit.unit import Unit
from amrkit.workflows.registration import unit_on_cable


@dataclass(frozen=True)
class Provisioned:
    unit_id: str
    generation: int
    board: str
    mac: str
    label: Path | None


def default_config() -> dict[str, int]:
    """The firmware's own defaults (amr/config.py), which it validates again."""
    return dict(firmware_module("config").DEFAULTS)


async def provision(
    unit: Unit,
    registry: Registry,
    actor: str,
    *,
    config: Mapping[str, int] | None = None,
    force: bool = False,
    label_dir: Path | None = None,
) -> Provisioned:
    """Provision the unit on `unit`'s (wired) link; see the module doc."""
    info = await unit.info()
    record = unit_on_cable(registry, info)
    settings = dict(config or default_config())
    with registry.step(actor, "provision", record.unit_id) as step:
        generation = max(step.next_generation(), int(info.get("key_generation") or 0) + 1)
        keys = UnitKeys(os.urandom(16), os.urandom(16), os.urandom(16))
        step.store_keys(generation, keys, heartbeat_s=settings["heartbeat_s"])
        step.transition(State.PROVISIONED, {"key_generation": generation})
        await unit.provision(bytes.fromhex(record.unit_id), generation, keys, settings, force=force)
        await unit.prove_keys(KnownUnit(record.unit_id, keys, settings["heartbeat_s"]), generation)
        # Its life starts here: the faults of a unit without keys (it boots
        # into a fault state until provisioned) are history, kept in the audit.
        before = await unit.diagnostics()
        await unit.clear_diagnostics()
        step.note(proved=True, last_fault_before=info.get("last_fault"), boots=before.get("boots"))
    label = None
    if label_dir is not None:
        label_dir.mkdir(parents=True, exist_ok=True)
        label = write_label(label_dir / f"{record.unit_id}.png", record.unit_id, record.board)
    return Provisioned(record.unit_id, generation, record.board, record.mac, label)
