"""Wiping a returned unit: its keys, config and bonds erased on the unit,
the erasure proved (the unit can no longer answer the challenge for the
keys it held), and only then the registry's copy of its keys destroyed.
A unit that is not returned is refused before it is touched."""

from __future__ import annotations

from dataclasses import dataclass

from amrkit.registry import Registry, State
from amrkit.unit import KeyProofError, Unit, UnitError
from amrkit.workflows.registration import unit_on_cable


class WipeNotVerified(UnitError):
    """The unit still proves the keys it should have lost."""


@dataclass(frozen=True)
class Wiped:
    unit_id: str
    generation: int


async def wipe(unit: Unit, registry: Registry, actor: str) -> Wiped:
    info = await unit.info()
    record = unit_on_cable(registry, info)
    known = registry.keys(record.unit_id) if record.has_keys else None
    with registry.step(actor, "wipe", record.unit_id) as step:
        # Refused (a unit not returned) before the unit is touched; committed
        # only once the erasure is proved below.
        step.transition(State.WIPED, {"verified": True, "key_generation": record.generation})
        await unit.wipe()
        if known is not None:
            try:
                await unit.prove_keys(known, record.generation)
            except KeyProofError:
                pass  # what a wiped unit must do
            else:
                raise WipeNotVerified(
                    f"{unit.link.name} still proves the keys of generation "
                    f"{record.generation} after the wipe: it is not wiped; run amr wipe again"
                )
    return Wiped(record.unit_id, record.generation)
