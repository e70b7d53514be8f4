"""A unit over its wired link: the MicroPython raw REPL, through mpremote's
transport, so any pyserial URL works (/dev/ttyUSB0, rfc2217://, socket://).
Opening the link does not reset the unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from types import TracebackType
from typing import Any

from mpremote.transport import TransportError  # type: ignore[import-untyped]
from mpremote.transport_serial import SerialTransport  # type: ignore[import-untyped]

from amrkit.unit import UnitError, decode_reply


def command_source(name: str, arg: bytes | None = None) -> str:
    """What the raw REPL runs for one service command (amr/commands.py);
    its argument, if any, goes as hex digits."""
    args = repr(name) if arg is None else f"{name!r}, {arg.hex()!r}"
    return f"import amr.commands\namr.commands.wired({args})\n"


def _reason(err: TransportError) -> str:
    """What went wrong on the unit, in one line: the last line of the error
    a program raised there (not its traceback), or the transport's words."""
    if len(err.args) == 3 and err.args[0] == "exception":
        lines = bytes(err.args[2]).decode(errors="replace").strip().splitlines()
        return "it raised " + (lines[-1] if lines else "an error")
    return str(err)


class WiredLink:
    """One raw-REPL session on a unit's serial port."""

    def __init__(self, port: str, timeout_s: float = 10.0) -> None:
        self.port = port
        self._timeout_s = timeout_s
        self._transport: Any = None

    @property
    def name(self) -> str:
        return self.port

    async def __aenter__(self) -> WiredLink:
        await asyncio.to_thread(self._open)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._close)

    def _open(self) -> None:
        try:
            self._transport = SerialTransport(self.port, baudrate=115200, timeout=self._timeout_s)
        except Exception as err:  # mpremote raises TransportError or serial's errors
            raise UnitError(
                f"cannot open {self.port}: {err}; check the cable and the port name"
            ) from err
        try:
            # mpremote prints what it got instead of a prompt; the error says enough.
            with contextlib.redirect_stdout(io.StringIO()):
                self._transport.enter_raw_repl(soft_reset=False)
        except TransportError as err:
            self._transport.close()
            raise UnitError(
                f"{self.port} did not answer as an AMR unit: {_reason(err)}; "
                "a blank board needs MicroPython and the app first"
            ) from err

    def _close(self) -> None:
        try:
            self._transport.exit_raw_repl()
        except TransportError:
            pass  # the session is over either way; the port is closed below
        finally:
            self._transport.close()

    async def command(self, name: str, arg: bytes | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self._command, name, arg)

    def _command(self, name: str, arg: bytes | None) -> dict[str, Any]:
        try:
            # Never quoted in an error: a provision's argument holds keys.
            output = self._transport.exec(command_source(name, arg))
        except TransportError as err:
            raise UnitError(
                f"{self.port} did not answer {name} as an AMR unit: {_reason(err)}; "
                "is the app deployed on it?"
            ) from err
        if not output.strip():
            raise UnitError(
                f"{self.port} gave no answer to {name}: the unit reset while running it "
                "(a cell that browns out under radio load?); check the cell and try again"
            )
        return decode_reply(self.port, name, output)
