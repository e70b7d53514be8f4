"""A unit over its wired link: the MicroPython raw REPL, through mpremote's
transport, so any pyserial URL works (/dev/ttyUSB0, rfc2217://, socket://).
Opening the link does not reset the unit; it interrupts the app (Ctrl-C),
and closing it hands the unit back to its app with a soft reboot (see
``WiredLink``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import socket
import time
from types import TracebackType
from typing import Any

import serial  # type: ignore[import-untyped]
from mpremote.transport import (  # type: ignore[import-untyped]
    TransportError,
    TransportExecError,
)
from mpremote.transport_serial import SerialTransport  # type: ignore[import-untyped]
from serial.tools import list_ports  # type: ignore[import-untyped]

from amrkit.unit import UnitError, decode_reply

log = logging.getLogger("amrkit.unit.wired")

HAND_BACK_S = 3.0  # for the friendly prompt, then for "soft reboot"
SOFT_REBOOT = b"soft reboot\r\n"


def command_source(name: str, arg: bytes | None = None) -> str:
    """What the raw REPL runs for one service command (amr/commands.py);
    its argument, if any, goes as hex digits."""
    args = repr(name) if arg is None else f"{name!r}, {arg.hex()!r}"
    return f"import amr.commands\namr.commands.wired({args})\n"


def _reason(err: TransportError) -> str:
    """What went wrong on the unit, in one line: the last line of the error
    a program raised there (not its traceback), or the transport's words."""
    if isinstance(err, TransportExecError):  # mpremote 1.2x: (status, the error's text)
        output = err.error_output
    elif len(err.args) == 3 and err.args[0] == "exception":  # older: (_, output, error)
        output = err.args[2]
    else:
        return str(err)
    if isinstance(output, bytes | bytearray):
        output = bytes(output).decode(errors="replace")
    lines = str(output).strip().splitlines()
    return "it raised " + (lines[-1] if lines else "an error")


BUSY = (
    "busy: another program has it open (another amr, mpremote, esptool or a serial "
    "terminal); close that program or wait for it to finish, then try again"
)


def _unopenable(port: str) -> str:
    """Why `port` cannot be opened, and what to do. mpremote says only
    "failed to access", so ask again: a tty through pyserial (a port another
    program holds is locked, as mpremote and esptool lock it); a network port
    by connecting (a busy RFC 2217 server, the twin's or ser2net, says so and
    hangs up)."""
    scheme, sep, rest = port.partition("://")
    if sep and scheme in ("rfc2217", "socket"):
        return _network_port(port, rest.split("?")[0].split("/")[0])
    if sep:
        return f"cannot open {port}; check the URL (rfc2217://HOST:PORT, socket://HOST:PORT)"
    try:
        serial.Serial(port, exclusive=True).close()
    except serial.SerialException as err:
        if "exclusively lock" in str(err) or err.errno == errno.EBUSY:
            return f"{port} is {BUSY}"
        if err.errno == errno.ENOENT:
            ports = ", ".join(p.device for p in list_ports.comports()) or "none"
            return f"{port}: no such port (ports here: {ports}); check the cable and the port name"
        if err.errno == errno.EACCES:
            return (
                f"{port}: permission denied; add this user to the port's group "
                "(dialout or uucp) and log in again"
            )
        return f"cannot open {port}: {err}; check the cable and the port name"
    except (OSError, ValueError) as err:
        return f"cannot open {port}: {err}; check the cable and the port name"
    return f"cannot open {port} (it opens now: it was busy a moment ago?); try again"


def _network_port(port: str, address: str) -> str:
    host, _, number = address.rpartition(":")
    try:
        with socket.create_connection((host, int(number)), timeout=3) as sock:
            sock.settimeout(1.0)
            try:
                greeting = sock.recv(256)
            except TimeoutError:
                greeting = None  # it waits for us: free (now)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        return (
            f"cannot open {port}: nothing answers at {address} ({reason}); "
            "is `amr sim` (or the serial server) running, and is that its port?"
        )
    if greeting is not None and (not greeting or b"in use" in greeting):
        return f"{port} is {BUSY}"
    return f"cannot open {port} (it answers now: it was busy a moment ago?); try again"


def hand_back(transport: Any, wait_s: float = HAND_BACK_S) -> str | None:
    """End a raw-REPL session by handing the unit back to its app: leave the
    raw REPL (Ctrl-B) and soft-reboot from the friendly prompt (Ctrl-D on an
    empty line), so that main.py runs again, as only the friendly REPL's soft
    reboot does (from the raw REPL the unit would stay at its prompt). RTC
    memory survives it and the app sees reset cause SOFT_RESET: test mode and
    the `service` flag set in the session are there for it. None once the
    unit says "soft reboot"; else what went wrong (the port stays open)."""
    try:
        transport.exit_raw_repl()
        transport.read_until(1, b">>> ", timeout=wait_s, timeout_overall=wait_s)
        transport.serial.write(b"\x04")
        said = transport.read_until(1, SOFT_REBOOT, timeout=wait_s, timeout_overall=wait_s)
    except (TransportError, serial.SerialException, OSError) as err:
        return f"the port failed ({err})"
    if not said.endswith(SOFT_REBOOT):
        return f"no soft reboot within {wait_s:.0f} s"
    return None


def not_handed_back(port: str, problem: str) -> str:
    """The warning for a unit that may be left at its REPL prompt."""
    return (
        f"{port}: the command is done, but the unit did not restart its app ({problem}): "
        "it may sit at its REPL prompt and ignore the button; press its reset "
        "(or unplug it and plug it back) before it leaves the bench"
    )


class WiredLink:
    """One raw-REPL session on a unit's serial port.

    Opening enters the raw REPL with Ctrl-C, Ctrl-A: on the chip the Ctrl-C
    interrupts the app (main.py) wherever it is. What the app had persisted
    (flash, RTC memory) stands; an alert is reserved in flash before its
    first frame, so one interrupted mid-send resumes at the app's next run.
    The app does not run while the session lasts. Closing hands the unit
    back to its app (``hand_back``): out of the raw REPL and a soft reboot
    from the friendly prompt, so main.py runs again at once with RTC memory
    kept (``machine.reset_cause()`` is SOFT_RESET): test mode and the
    one-shot service flag set in the session reach it, and a unit read,
    provisioned, checked or paired on the bench answers its button when it
    is unplugged. It does so however the session ended. A unit that does not
    answer the hand-back does not fail a command that succeeded: the link
    logs a warning (``amrkit.unit.wired``, on stderr from the CLI) and sets
    ``handed_back`` to False.
    """

    def __init__(self, port: str, timeout_s: float = 10.0) -> None:
        self.port = port
        self._timeout_s = timeout_s
        self._transport: Any = None
        self.handed_back: bool | None = None  # after the session: did the app restart?

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
            raise UnitError(_unopenable(self.port)) from err
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
        started = time.monotonic()
        try:
            problem = hand_back(self._transport)
        finally:
            self._transport.close()  # the session is over either way
        self.handed_back = problem is None
        if problem is not None:
            log.warning(not_handed_back(self.port, problem))
        else:
            log.debug("%s: app restarted in %.2f s", self.port, time.monotonic() - started)

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
