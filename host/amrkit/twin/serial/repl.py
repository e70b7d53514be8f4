"""MicroPython's REPL on a virtual unit's UART, for real mpremote.

The unix port of MicroPython has a terminal REPL only, without the raw REPL
that mpremote drives, so the REPL is ``twin/serial/_repl.py``: a script run
by one persistent ``micropython`` process per boot, with the UART as its
stdin/stdout. It speaks the friendly REPL, the raw REPL, raw-paste mode and
soft reset as ``shared/runtime/pyexec.c`` does on the ESP32 port; the
unit's filesystem (``<unit>/fs``) is mounted at ``/``. After the ROM's boot
log (printed by the board) comes MicroPython's banner and ``>>> `` straight
away, as on the ESP32 port, whose bootloader logs errors only.

    board = VirtualBoard.for_unit(unit_dir, load_board(), on_boot=repl_on_boot(unit_dir))
    with Rfc2217Server(board) as server:
        mpremote connect {server.url} fs cp main.py :main.py

Ctrl-C: on the chip, the UART interrupt turns Ctrl-C into KeyboardInterrupt
while a program runs, and hands it to the REPL as a byte otherwise (or when
the program has called ``micropython.kbd_intr(-1)``). Here the script reports
on a status pipe when it starts (``E``) and ends (``I`` + sequence number) a
run, and waits for the sequence number on an ack pipe before going on; Ctrl-C
bytes are turned into SIGINT (KeyboardInterrupt on the unix port) only
between the two, and only if the process still handles SIGINT.

The app (main.py): on the chip it is the program the REPL runs after every
reset, so the host's first Ctrl-C interrupts it and a soft reset from the
friendly REPL runs it again. The twin runs the app in processes of its own
(``amrkit.twin.sim``); an ``UnitApp`` handed to ``repl_on_boot`` hears of
both: a Ctrl-C that reaches the unit while no REPL program runs goes to
``UnitApp.interrupt()`` (spent if the app was running, as its
KeyboardInterrupt), and a friendly soft reset, reported as ``S`` on the
status pipe, to ``UnitApp.soft_reboot()``, before the script says "MPY:
soft reboot".
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Protocol

from amrkit.paths import firmware_dir, micropython_binary, platform_dir
from amrkit.twin.platform._contract import DIR_ENV, REPL_ENV
from amrkit.twin.serial.board import BootContext, OnBoot, UartHandler

log = logging.getLogger("amrkit.twin.serial")

FS_DIR = "fs"
# Beside this module, not among the platform emulations: the firmware never imports it.
REPL_SCRIPT = Path(__file__).with_name("_repl.py")
CTRL_C = 0x03


class UnitApp(Protocol):
    """The unit's app, run beside its REPL (amrkit.twin.sim.SimUnit)."""

    def interrupt(self) -> bool:
        """A Ctrl-C while the REPL runs no program: stop the app where it is,
        and keep it stopped; return once it has. True if it was running
        (awake or asleep), so that the Ctrl-C was its KeyboardInterrupt."""

    def soft_reboot(self) -> None:
        """A soft reset from the friendly REPL: start the app again (RTC
        memory kept, reset cause SOFT_RESET); return once it has started."""


def machine_name(chip: str) -> str:
    """The banner's board and MCU, as the generic ESP32-C3 build prints them."""
    mcu = chip.replace("-", "")
    return f"{mcu} module with {mcu}"


def _handles_sigint(pid: int) -> bool:
    """Does the process catch SIGINT (so it becomes KeyboardInterrupt, not death)?"""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return True  # no /proc: the REPL keeps its handler unless a program removed it


class RawReplApp:
    """A UartHandler: the unit's MicroPython REPL process for one boot."""

    def __init__(
        self,
        context: BootContext,
        unit_dir: Path,
        firmware: Path | None = None,
        micropython: str | None = None,
        app: UnitApp | None = None,
    ) -> None:
        self.context = context
        self.app = app
        self.unit_dir = Path(unit_dir).resolve()
        self.fs_dir = self.unit_dir / FS_DIR
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        self.received = 0  # bytes from the host so far
        self._executing = False  # a program runs: Ctrl-C becomes SIGINT
        self._state = threading.Lock()
        self._stopped = False
        self._inbox: queue.Queue[bytes | None] = queue.Queue()

        status_read, status_write = os.pipe()
        ack_read, ack_write = os.pipe()
        path = [self.fs_dir, platform_dir(), (firmware or firmware_dir()).resolve()]
        env = {
            **os.environ,
            "MICROPYPATH": os.pathsep.join(str(p) for p in path),
            DIR_ENV: str(self.unit_dir),
            REPL_ENV: "1",
        }
        try:
            self.process = subprocess.Popen(
                [
                    micropython or micropython_binary(),
                    str(REPL_SCRIPT),
                    str(status_write),
                    str(ack_read),
                    machine_name(context.board.chip),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # sys.stderr goes to the UART too, as on the chip
                pass_fds=(status_write, ack_read),
                cwd=self.fs_dir,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C is not for the unit
            )
        except BaseException:
            for fd in (status_read, status_write, ack_read, ack_write):
                os.close(fd)
            raise
        os.close(status_write)
        os.close(ack_read)
        self._status = status_read
        self._ack = ack_write
        name = context.board.directory.name
        self._threads = [
            threading.Thread(target=self._relay_output, name=f"repl out {name}", daemon=True),
            threading.Thread(target=self._follow_status, name=f"repl status {name}", daemon=True),
            threading.Thread(target=self._feed_input, name=f"repl in {name}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("%s: REPL pid %d", name, self.process.pid)

    # -- UartHandler ----------------------------------------------------------

    def receive(self, data: bytes) -> None:
        self.received += len(data)
        self._inbox.put(bytes(data))  # never blocks the board's lock on a full pipe

    def stop(self) -> None:
        """Kill the process; the threads end on their own (they may be waiting
        for the board's lock, which the caller of stop() holds)."""
        with self._state:
            self._stopped = True
        self._inbox.put(None)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the threads to end, after stop() (not with the board's lock held)."""
        for thread in self._threads:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    # -- threads ------------------------------------------------------------------

    def _relay_output(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        with stdout:
            while True:
                try:
                    data = os.read(stdout.fileno(), 4096)
                except OSError:
                    break
                if not data:
                    break
                self.context.send(data)
        code = self.process.wait()
        if not self._stopped:
            log.warning("%s: REPL process ended (exit %s)", self.unit_dir.name, code)

    def _follow_status(self) -> None:
        pending = b""
        try:
            while True:
                try:
                    data = os.read(self._status, 64)
                except OSError:
                    break
                if not data:
                    break
                pending += data
                while pending:
                    if pending[:1] == b"E":
                        with self._state:
                            self._executing = True
                        pending = pending[1:]
                    elif pending[:1] == b"I" and len(pending) >= 2:
                        with self._state:  # from here on, no SIGINT for this run
                            self._executing = False
                            with contextlib.suppress(OSError):
                                os.write(self._ack, pending[1:2])
                        pending = pending[2:]
                    elif pending[:1] == b"I":
                        break  # the sequence number is on its way
                    elif pending[:1] == b"S":
                        pending = pending[1:]
                        self._soft_reboot()
                    else:
                        log.error("%s: REPL status garbled: %r", self.unit_dir.name, pending)
                        pending = b""
        finally:
            os.close(self._status)
            os.close(self._ack)

    def _feed_input(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while True:
                data = self._inbox.get()
                if data is None:
                    break
                start = 0
                while True:
                    at = data.find(CTRL_C, start)
                    chunk = data[start:] if at < 0 else data[start:at]
                    if chunk:
                        stdin.write(chunk)
                        stdin.flush()
                    if at < 0:
                        break
                    if not self._interrupt() and not self._interrupt_app():
                        stdin.write(b"\x03")
                        stdin.flush()
                    start = at + 1
        except (OSError, ValueError):
            pass  # the process is gone
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _interrupt(self) -> bool:
        """Ctrl-C while a program runs: KeyboardInterrupt in it. False: pass the byte on."""
        with self._state:
            if self._stopped or not self._executing or self.process.poll() is not None:
                return False
            if not _handles_sigint(self.process.pid):
                return False  # micropython.kbd_intr(-1): the program reads Ctrl-C itself
            os.kill(self.process.pid, signal.SIGINT)
            return True

    def _interrupt_app(self) -> bool:
        """Ctrl-C with no REPL program running: the app's KeyboardInterrupt,
        if it runs. False: pass the byte on to the REPL."""
        if self.app is None or self._stopped:
            return False
        try:
            return self.app.interrupt()
        except Exception:
            log.exception("%s: interrupting the app failed", self.unit_dir.name)
            return False

    def _soft_reboot(self) -> None:
        """The REPL soft-reset from its friendly mode: main.py runs again.
        The script waits for this acknowledgement before it goes on."""
        try:
            if self.app is not None and not self._stopped:
                self.app.soft_reboot()
        except Exception:
            log.exception("%s: starting the app again failed", self.unit_dir.name)
        finally:
            with contextlib.suppress(OSError):
                os.write(self._ack, b"S")


def repl_on_boot(
    unit_dir: Path, firmware: Path | None = None, app: UnitApp | None = None
) -> OnBoot:
    """``on_boot`` for ``VirtualBoard``: every boot from flash starts the REPL
    on the unit's filesystem ``<unit_dir>/fs``; ``app``, if given, is the
    unit's app that the REPL's Ctrl-C and soft reset reach."""

    def on_boot(context: BootContext) -> UartHandler:
        return RawReplApp(context, unit_dir, firmware=firmware, app=app)

    return on_boot
