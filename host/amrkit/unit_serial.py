"""A unit over its wired link: the MicroPython raw REPL, through mpremote's
transport, so any pyserial URL works (/dev/ttyUSB0, rfc2217://, socket://).
"""

from __future__ import annotations

import json
from typing import Any

from mpremote.transport import TransportError  # type: ignore[import-untyped]
from mpremote.transport_serial import SerialTransport  # type: ignore[import-untyped]


def command_source(name: str) -> str:
    """What the raw REPL runs for one service command (amr/commands.py)."""
    return f"import amr.commands\namr.commands.wired({name!r})\n"


class UnitError(RuntimeError):
    """The unit could not be reached or did not answer sensibly."""


def read_service_report(port: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The unit's info and diagnostics (amr/commands.py): battery, whether
    config, state and keys are sound. Does not reset the unit."""
    try:
        transport = SerialTransport(port, baudrate=115200, timeout=timeout_s)
    except Exception as err:  # mpremote raises TransportError or serial's errors
        raise UnitError(f"cannot open {port}: {err}; check the cable and the port name") from err
    try:
        transport.enter_raw_repl(soft_reset=False)
        output = transport.exec(command_source("info"))
        diagnostics = transport.exec(command_source("diagnostics"))
        transport.exit_raw_repl()
    except TransportError as err:
        raise UnitError(f"{port} did not answer as an AMR unit: {err}") from err
    finally:
        transport.close()
    try:
        report: dict[str, Any] = json.loads(output)
        report["diagnostics"] = json.loads(diagnostics)
    except ValueError as err:
        text = output.decode(errors="replace")[:200]
        raise UnitError(f"{port} answered something that is not a readout: {text!r}") from err
    return report
