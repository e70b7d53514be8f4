"""Talk to `amr sim`'s control port as a tool would, for the tests that need it."""

from __future__ import annotations

from typing import Any

from amrkit.twin.control import send
from amrkit.twin.sim import Sim


def control(sim: Sim, command: dict[str, Any]) -> dict[str, Any]:
    """Send one JSON command line (amrkit.twin.control, as `amr sim press` does); the reply."""
    return send(sim.control.removeprefix("tcp://"), command, timeout_s=30)
