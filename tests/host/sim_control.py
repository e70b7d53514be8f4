"""Talk to `amr sim`'s control port as a tool would, for the tests that need it."""

from __future__ import annotations

import json
import socket
from typing import Any

from amrkit.twin.sim import Sim


def control(sim: Sim, command: dict[str, object]) -> dict[str, Any]:
    """Send one JSON command line; the JSON reply."""
    host, port = sim.control.removeprefix("tcp://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(json.dumps(command).encode() + b"\n")
        reply: dict[str, Any] = json.loads(s.makefile().readline())
    return reply
