"""A client for `amr sim`'s control port (JSON lines, amrkit.twin.sim), and
how a client finds it.

The control port is found, first match wins:
  1. an address given explicitly (`amr sim press --control HOST:PORT`);
  2. $AMR_SIM_CONTROL (HOST:PORT, or tcp://HOST:PORT as `amr sim` prints it);
  3. the file a running `amr sim` writes, `control_file()`:
     $AMR_SIM_RUNTIME_DIR, else $XDG_RUNTIME_DIR, else the temp folder's
     amr-UID/, then `sim.json` ({"control", "pid", "units"}). The sim started
     last owns it; the sim removes it on the way out, and a file whose sim
     is gone is reported as such.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

ENV_CONTROL = "AMR_SIM_CONTROL"
ENV_RUNTIME = "AMR_SIM_RUNTIME_DIR"
CONTROL_FILE = "sim.json"


class ControlError(RuntimeError):
    """No sim to talk to, or it did not answer; says what to do."""


def control_file() -> Path:
    """Where a running `amr sim` says where its control port is."""
    base = os.environ.get(ENV_RUNTIME) or os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / CONTROL_FILE
    return Path(tempfile.gettempdir()) / f"amr-{os.getuid()}" / CONTROL_FILE


def announce(control: str, units: list[str]) -> Path:
    """Write the control file for this process's sim; its path."""
    path = control_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"control": control, "pid": os.getpid(), "units": units}))
    tmp.replace(path)
    return path


def withdraw(path: Path) -> None:
    """Remove the control file if this process's sim still owns it."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_control(explicit: str | None = None) -> str:
    """HOST:PORT of the sim's control port (the order in the module docstring)."""
    address = explicit or os.environ.get(ENV_CONTROL)
    if address:
        return address.removeprefix("tcp://")
    path = control_file()
    try:
        record = json.loads(path.read_text())
        address, pid = str(record["control"]), int(record["pid"])
    except FileNotFoundError:
        raise ControlError(
            f"no `amr sim` running (no {path}): start one (`amr sim --units 2`), "
            f"or give --control HOST:PORT or ${ENV_CONTROL}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ControlError(
            f"{path} is unreadable ({err}): restart `amr sim`, or give --control HOST:PORT"
        ) from None
    if not _alive(pid):
        raise ControlError(
            f"the `amr sim` that wrote {path} (pid {pid}) is gone: start one, "
            "or give --control HOST:PORT"
        )
    return address.removeprefix("tcp://")


def send(address: str, command: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """One command to the control port at HOST:PORT; its reply (with "ok")."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ControlError(f"{address!r} is not HOST:PORT (as `amr sim` prints it)") from None
    try:
        with socket.create_connection((host or "127.0.0.1", number), timeout=timeout_s) as sock:
            sock.sendall(json.dumps(command).encode() + b"\n")
            line = sock.makefile("rb").readline()
    except OSError as err:
        raise ControlError(
            f"no `amr sim` control port at {address} ({err.strerror or err}): "
            "is the sim still running? Its first lines say where its control port is"
        ) from None
    if not line:
        raise ControlError(f"the sim at {address} closed the connection without an answer")
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError(f"{address} is not an `amr sim` control port") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{address} is not an `amr sim` control port")
    return reply
