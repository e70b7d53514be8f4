"""`amr sim`: a fleet of virtual units that real tools reach.

Each unit runs the unmodified firmware (amrkit.twin.unit) in its own thread.
Deep sleep fast-forwards: while a unit sleeps its virtual clock runs `speed`
times faster than the wall clock. Its radio is live (amrkit.twin.radio_peer):
from the first activation of its stack in a boot, the firmware drives a
bumble device on the shared virtual radio in real time, where bleak
(through the bumble backend) hears and connects to it, and it hears
acknowledgements. Every unit also has a serial port (RFC 2217) in front of
an emulated dev board. Events are injected through a control port speaking
JSON lines.
"""

from __future__ import annotations

import json
import queue
import shutil
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from amrkit import build
from amrkit.ble.bumble import RadioThread
from amrkit.boards import Board
from amrkit.protocol import KnownUnit
from amrkit.twin.energy import account
from amrkit.twin.factory import provision, twin_keys
from amrkit.twin.gestures import Rng, service_presses, taps, trace
from amrkit.twin.platform._contract import NVS_FILE
from amrkit.twin.radio_peer.device import UnitRadio
from amrkit.twin.receivers import Profile, live_listener
from amrkit.twin.serial import (
    FLASH_FILE,
    BootContext,
    FlashMemory,
    OnBoot,
    Rfc2217Server,
    UartHandler,
    VirtualBoard,
    repl_on_boot,
)
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.unit import FirmwareCrash, VirtualUnit

SPEED = 1000.0  # virtual seconds per wall second while a unit sleeps
TICK_S = 0.02
BOOT_WAIT_S = 60.0
COMMAND_TIMEOUT_S = 30.0  # for a unit to be between boots and take a power or clock command
SOFT_REBOOT_WAIT_S = 5.0  # for the unit's thread to start the app after a soft reboot
# Commands that only change the unit's surroundings (its button, cell, radio)
# or read its status; they need not wait for it to sleep.
AT_ONCE = frozenset({"press", "taps", "service", "battery", "hang", "radio_loss", "status"})
# The control port's commands: those and the power and clock changes, which
# the unit's thread carries out between boots (soft_reset comes from its REPL).
CONTROL_COMMANDS = AT_ONCE | {"power_cut", "power_on", "time_jump"}
# What a command's numbers may be: the ranges `amr sim`'s own commands allow.
TAPS = (1, 20)
PRESS_MS = (1, 60_000)
BATTERY_MV = (0, 5000)
JUMP_MS = (1, 10 * 365 * 86_400_000)
SEED = (-(2**63), 2**63 - 1)


class SimError(ValueError):
    """A control command that cannot be carried out; says why."""


class _Queued:
    """A command waiting for its unit's thread. Whoever claims it first
    decides its fate: the unit's thread carries it out, or the sender,
    tired of waiting, withdraws it, so a command reported as not done is
    never done later behind the sender's back."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.command = command
        self.reply: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._claimed_by = ""

    def claim(self, who: str) -> bool:
        with self._lock:
            if not self._claimed_by:
                self._claimed_by = who
            return self._claimed_by == who


def _int(c: dict[str, Any], key: str, bounds: tuple[int, int], default: int | None = None) -> int:
    """c[key] (or the default) as an int within bounds; a SimError saying
    what it must be otherwise (a text, NaN, an infinity, out of range)."""
    value = c.get(key, default)
    if value is None:
        raise SimError(f"{c.get('cmd')} needs {key!r}")
    low, high = bounds
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        number = None
    else:
        try:
            number = int(float(value)) if not isinstance(value, int) else value
        except (ValueError, OverflowError):
            number = None
    if number is None or not low <= number <= high:
        raise SimError(f"{c.get('cmd')}: {key}={value!r}: give a whole number, {low} to {high}")
    return number


class SimUnit:
    """One virtual unit and the thread that drives it."""

    def __init__(self, sim: Sim, name: str, unit: VirtualUnit, known: KnownUnit | None) -> None:
        self.sim = sim
        self.name = name
        self.unit = unit
        self.known = known
        self.commands: queue.Queue[_Queued] = queue.Queue()
        self.serial: Rfc2217Server | None = None
        self.device: UnitRadio | None = None  # where its firmware reaches the radio
        self.ready = threading.Event()  # its first boot is over
        self._anchor = (time.monotonic(), unit.clock_ms)  # wall s, virtual ms
        self._rate = sim.speed  # virtual ms per wall ms from the anchor
        self._cut_next_write = False
        self._thread = threading.Thread(target=self._run, name=f"sim-{name}", daemon=True)

    # -- clock ---------------------------------------------------------------

    def virtual_now(self) -> int:
        awake = self.unit.awake_clock()
        if awake is not None:  # awake, in real time
            return awake
        wall, virtual = self._anchor
        return virtual + int((time.monotonic() - wall) * 1000 * self._rate)

    def _reanchor(self, virtual_ms: int) -> None:
        """From now the clock runs from virtual_ms: fast-forwarded while the
        unit sleeps, in real time while its app is stopped at the REPL."""
        self._rate = 1.0 if self.unit.stopped else self.sim.speed
        self._anchor = (time.monotonic(), virtual_ms)
        self.unit.anchor_rtc(virtual_ms, self._rate)

    # -- the unit's thread ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def on_boot(self, fs: Path) -> OnBoot:
        """What the chip runs when its board resets into flash: MicroPython's
        REPL on the UART, importing the app from the unit's own filesystem
        only (a board without the app deployed has none); and, after a reset
        through the serial lines (EN, as after `amr flash`), the app itself
        from the start, as main.py would, if one is deployed. The board's
        first boot is the sim's own start, where the unit is already running.
        The REPL reaches the app as on the chip (interrupt, soft_reboot)."""
        repl = repl_on_boot(self.unit.directory, fs, app=self)

        def boot(context: BootContext) -> UartHandler:
            if context.number > 1 and (fs / "main.py").exists():
                self.commands.put(_Queued({"cmd": "power_on"}))
            return repl(context)

        return boot

    # -- the app, as the REPL on its serial port reaches it (repl.UnitApp) ------

    def interrupt(self) -> bool:
        """The host's Ctrl-C: the app stops where it is (VirtualUnit.interrupt)
        and stays stopped while the session lasts; its clock runs in real
        time meanwhile (the chip is awake at its REPL)."""
        running = self.unit.interrupt(self.virtual_now())
        self._reanchor(max(self.virtual_now(), self.unit.clock_ms))
        return running

    def soft_reboot(self) -> None:
        """Ctrl-D at the friendly REPL (or machine.soft_reset() there): main.py
        runs again, in the unit's thread, with RTC memory kept and reset cause
        SOFT_RESET; returns once it has started (or could not)."""
        self.interrupt()  # a soft reset stops whatever ran, if a Ctrl-C did not
        queued = _Queued({"cmd": "soft_reset"})
        self.commands.put(queued)
        deadline = time.monotonic() + SOFT_REBOOT_WAIT_S
        while (
            (self.unit.stopped or self.unit.awake_clock() is None)
            and queued.reply.empty()
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)

    def join(self) -> None:
        self.unit.halt()  # a unit awake in service mode would hold the thread
        self._thread.join(timeout=10)

    def _run(self) -> None:
        stop = self.sim.stopping
        try:
            try:
                if self.known is not None:  # provisioned: it starts with a cell in
                    self.unit.power_on()
                    self._reanchor(self.unit.clock_ms)
            finally:
                self.ready.set()
            self._loop(stop)
        except FirmwareCrash:
            if not stop.is_set():  # halted on the way out, or a real crash
                raise

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._serve_commands()
            wake, _ = self.unit.next_wake()
            if not self.unit.asleep or wake is None or wake > self.virtual_now():
                stop.wait(TICK_S)
                continue
            cut = self.unit.commits + 1 if self._cut_next_write else None
            for boot in self.unit.run_until(wake, cut_at_commit=cut):
                self._cut_next_write = self._cut_next_write and not boot.power_cut
            self._reanchor(self.unit.clock_ms)

    # -- commands (power and clock in the unit's thread, the rest at once) -------

    def at_once(self, command: dict[str, Any]) -> dict[str, Any]:
        """A command about the world around the unit, carried out from the
        caller's thread: it reaches a unit that is awake now."""
        try:
            return {"ok": True, **self._checked(command)}
        except SimError as err:
            return {"ok": False, "error": str(err)}

    def _serve_commands(self) -> None:
        while True:
            try:
                queued = self.commands.get_nowait()
            except queue.Empty:
                return
            if not queued.claim("unit"):
                continue  # withdrawn by its sender
            try:
                queued.reply.put({"ok": True, **self._checked(queued.command)})
            except SimError as err:
                queued.reply.put({"ok": False, "error": str(err)})

    def _checked(self, c: dict[str, Any]) -> dict[str, Any]:
        """_command, with a missing or malformed value refused as a SimError
        (never an exception that ends the unit's thread or the connection)."""
        try:
            return self._command(c)
        except SimError:
            raise  # a ValueError too, that already says what is wrong
        except KeyError as err:
            raise SimError(f"{c.get('cmd')} needs {err.args[0]!r}") from err
        except (TypeError, ValueError, OverflowError) as err:
            raise SimError(f"{c.get('cmd')}: a value is not a number: {err}") from err

    def _start_app(self, boot: Callable[[], object], missing: str, now: int) -> dict[str, Any]:
        """Run the deployed app from its start (power-on or soft reset); its status."""
        unit = self.unit
        if not (unit.firmware / "main.py").exists():
            raise SimError(f"{self.name} has no app: {missing}")
        unit.clock_ms = max(unit.clock_ms, now)
        try:
            boot()
        except FirmwareCrash as crash:
            # As on the chip, an app that raises leaves the unit at the REPL
            # prompt, not asleep; the unit's thread goes on serving.
            raise SimError(f"{self.name}: its app stopped at boot: {crash}") from None
        finally:
            self._reanchor(unit.clock_ms)
        return self._status()

    def _command(self, c: dict[str, Any]) -> dict[str, Any]:
        cmd = c.get("cmd")
        now = self.virtual_now()
        unit = self.unit
        if cmd == "press":
            rng = Rng(_int(c, "seed", SEED, 1))
            unit.press(
                now + 5,
                trace(
                    rng, [(0, _int(c, "duration_ms", PRESS_MS, 200))], bool(c.get("bounce", True))
                ),
            )
        elif cmd == "taps":
            rng = Rng(_int(c, "seed", SEED, 1))
            unit.press(
                now + 5,
                trace(rng, taps(rng, _int(c, "count", TAPS, 3)), bool(c.get("bounce", True))),
            )
        elif cmd == "service":  # the maintenance gesture
            rng = Rng(_int(c, "seed", SEED, 1))
            unit.press(now + 5, trace(rng, service_presses(rng), bool(c.get("bounce", True))))
        elif cmd == "radio_loss":
            p = float(c["p"])
            if not 0.0 <= p <= 1.0:
                raise SimError(f"radio_loss p={p} is not a probability: give 0.0 to 1.0")
            assert self.device is not None
            self.device.loss = p
        elif cmd == "battery":
            ohm = c.get("resistance_ohm")
            if ohm is not None and not (isinstance(ohm, int | float) and 0 <= ohm <= 1000):
                raise SimError(f"resistance_ohm={ohm!r}: give ohms, 0 to 1000 (a CR2032: 10-100)")
            unit.set_battery(_int(c, "mv", BATTERY_MV), None if ohm is None else float(ohm))
        elif cmd == "power_cut":
            if c.get("at_next_write"):
                self._cut_next_write = True
            else:
                unit.power_off(now)
        elif cmd == "power_on":
            return self._start_app(
                unit.power_on, "copy one with mpremote (fs cp -r) to its fs first", now
            )
        elif cmd == "soft_reset":  # from the serial port's REPL (soft_reboot)
            return self._start_app(unit.soft_reset, "its REPL soft-rebooted without one", now)
        elif cmd == "time_jump":
            ms = _int(c, "ms", JUMP_MS)
            unit.jump(ms)
            self._reanchor(self._anchor[1] + ms)
        elif cmd == "hang":
            delay = c.get("in_ms", 0)
            if not (isinstance(delay, int) and 0 <= delay <= 3_600_000):
                raise SimError(f"in_ms={delay!r}: give the ms until the hang, 0 to 3600000")
            unit.hang(now + delay)
        return self._status()

    def _status(self) -> dict[str, Any]:
        unit = self.unit
        now = max(self.virtual_now(), unit.clock_ms)
        return {
            "unit": self.name,
            "clock_ms": now,
            "on": unit.asleep,
            # running (awake or asleep), stopped (at the REPL, by the jig's
            # session), or off (no cell)
            "app": "stopped" if unit.stopped else "running" if unit.asleep else "off",
            "boots": len(unit.boots),
            "battery_mv": unit.battery_mv,
            "resistance_ohm": unit.resistance_ohm,
            "brownouts": sum(b.brownout for b in unit.boots),
            "radio_loss": self.device.loss if self.device else 0.0,
            "energy": account(unit.board, unit.boots, now).as_dict(),
        }

    def announce(self) -> dict[str, Any]:
        assert self.serial is not None
        return {
            "unit": self.name,
            "unit_id": self.known.unit if self.known else None,
            "serial": self.serial.url,
            # The same UART with BOOT held: esptool --before no-reset, no RFC 2217 cost.
            "serial_download": self.serial.download_url,
            "ble": self.sim.ble,
            "control": self.sim.control,
        }


class Sim:
    """N virtual units; use as a context manager, or `amr sim`."""

    def __init__(
        self,
        units: int,
        board: Board,
        directory: Path | None = None,
        *,
        blank: bool = False,
        speed: float = SPEED,
        receiver: Profile | None = None,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> None:
        if units < 1:
            raise SimError("--units must be at least 1")
        self.board = board
        # How receivers that connect to the radio listen (scan windows, loss);
        # None: they hear every advertising event.
        self.receiver = receiver
        self.speed = speed
        self.command_timeout_s = command_timeout_s
        self.blank = blank
        self.count = units
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="amr-sim-"))
        self.stopping = threading.Event()
        self.units: dict[str, SimUnit] = {}
        self.radio = RadioThread()
        self.ble = ""
        self.control = ""
        self._control_server: socketserver.ThreadingTCPServer | None = None

    def radio_call(self, coro: Any) -> Any:
        return self.radio.call(coro)

    # -- life ------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        self.radio.start()
        listener = None if self.receiver is None else live_listener(self.receiver)
        self.ble = self.radio.call(self.radio.radio.serve_tcp(listener=listener)).spec
        self._control_server = _ControlServer(self)
        self.control = f"tcp://127.0.0.1:{self._control_server.server_address[1]}"
        threading.Thread(target=self._control_server.serve_forever, daemon=True).start()
        app = self._bundle()
        for i in range(1, self.count + 1):
            name = f"unit-{i}"
            fs = self.directory / name / "fs"
            unit = VirtualUnit(self.directory / name, self.board, firmware=fs)
            fresh = not (unit.directory / NVS_FILE).exists()
            if fresh and not self.blank:
                shutil.copytree(app, fs, dirs_exist_ok=True)  # the app, deployed
            known = provision(unit) if fresh and not self.blank else twin_keys(unit)
            sim_unit = SimUnit(self, name, unit, None if self.blank else known)
            sim_unit.device = UnitRadio(
                self.radio.radio, name, unit.directory, sc_only=self.board.deployment == "frozen"
            )
            unit.ble = self.radio.call(sim_unit.device.start())
            if fresh and not self.blank:
                # Units start as issued: MicroPython in flash, the app deployed.
                FlashMemory(unit.directory / FLASH_FILE).program(0, stand_in_image())
            sim_unit.serial = Rfc2217Server(
                VirtualBoard.for_unit(unit.directory, self.board, sim_unit.on_boot(fs))
            )
            sim_unit.serial.start()
            self.units[name] = sim_unit
            sim_unit.start()
        # The units boot in parallel (each advertises its first heartbeat live).
        for sim_unit in self.units.values():
            if not sim_unit.ready.wait(BOOT_WAIT_S):
                raise SimError(f"{sim_unit.name} did not finish its first boot")

    def _bundle(self) -> Path:
        """The app as a unit carries it: .mpy files built for this board."""
        try:
            return build.build(self.board, self.directory / ".build")
        except build.BuildError as err:
            raise SimError(f"cannot build the app for board {self.board.name}: {err}") from err

    def command(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one control command; the reply as a dict. A power or
        clock command waits for its unit to be between boots; if that takes
        longer than command_timeout_s it is withdrawn, not done."""
        cmd, name = command.get("cmd"), command.get("unit")
        if not isinstance(cmd, str):
            return {"ok": False, "error": f"cmd={cmd!r}: give a command's name (a string)"}
        if cmd == "status" and "unit" not in command:
            return {
                "ok": True,
                "units": [self.command({"cmd": "status", "unit": u}) for u in self.units],
            }
        if cmd not in CONTROL_COMMANDS:
            return {
                "ok": False,
                "error": f"unknown command {cmd!r}: use press, taps, service, battery, hang, "
                "power_cut, power_on, time_jump, radio_loss or status",
            }
        if not isinstance(name, str) or name not in self.units:
            return {"ok": False, "error": f"no unit {name!r}: units are {', '.join(self.units)}"}
        sim_unit = self.units[name]
        if command.get("cmd") in AT_ONCE:
            return sim_unit.at_once(command)
        cut_now = command.get("cmd") == "power_cut" and not command.get("at_next_write")
        if cut_now and sim_unit.unit.cut_now():
            return {"ok": True, **sim_unit.at_once({"cmd": "status"})}  # awake: cut this instant
        # Power and clock changes wait for the unit's thread (between boots).
        queued = _Queued(command)
        sim_unit.commands.put(queued)
        timeout = self.command_timeout_s
        try:
            return queued.reply.get(timeout=timeout)
        except queue.Empty:
            pass
        if queued.claim("sender"):
            return {
                "ok": False,
                "error": f"{name} stayed awake for {timeout:g} s (an alert, service mode "
                f"or a hang); {cmd} was not done: send it again once the unit sleeps",
            }
        try:  # under way in the unit's thread: its boot runs until the app sleeps
            return queued.reply.get(timeout=timeout)
        except queue.Empty:
            return {"ok": False, "error": f"{name} is still carrying out {cmd} after {timeout:g} s"}

    def close(self) -> None:
        self.stopping.set()
        for sim_unit in self.units.values():
            sim_unit.join()
            if sim_unit.serial is not None:
                sim_unit.serial.stop()
            if sim_unit.device is not None:
                self.radio.call(sim_unit.device.close())
        if self._control_server is not None:
            self._control_server.shutdown()
            self._control_server.server_close()
        self.radio.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


class _ControlHandler(socketserver.StreamRequestHandler):
    server: _ControlServer

    def handle(self) -> None:
        for line in self.rfile:
            try:
                command = json.loads(line)
                if not isinstance(command, dict):
                    raise ValueError("a command is a JSON object")
                reply = self.server.sim.command(command)
            except ValueError as err:
                reply = {"ok": False, "error": f"bad command line: {err}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: Sim) -> None:
        super().__init__(("127.0.0.1", 0), _ControlHandler)
        self.sim = sim
