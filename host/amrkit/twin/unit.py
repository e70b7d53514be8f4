"""A virtual button: the unmodified firmware tree run under the MicroPython
unix port with the chip emulations of amrkit/twin/platform first on its path.

The supervisor here plays the role of the chip's power domain: it boots the
firmware, and when the firmware deep-sleeps (the process ends) it advances
the virtual clock to the next wake (its timer, or a scheduled press) and
boots it again, as the chip reboots on every wake. Flash (NVS) and RTC memory
live as files in the unit's directory; a power cut clears RTC memory only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amrkit.boards import Board
from amrkit.contract import (
    DEEPSLEEP_RESET,
    GPIO_WAKE,
    PWRON_RESET,
    SOFT_RESET,
    TIMER_WAKE,
    WDT_RESET,
)
from amrkit.paths import firmware_dir, micropython_binary, platform_dir
from amrkit.twin.platform._contract import (
    ACTIVE_LOW,
    ADC_UV,
    ADVERTISING,
    AIR_AD,
    AIR_FILE,
    AIR_FROM,
    AIR_TO,
    BOOT_MS,
    BROWNOUT_MV,
    BUTTON_PIN,
    CLOCK_MS,
    COMMITS,
    CUT_AFTER,
    CUT_AT_COMMIT,
    CUT_AT_MS,
    DIR_ENV,
    DRAWS,
    EVENTS_FILE,
    EXIT,
    EXIT_BROWNOUT,
    EXIT_FILE,
    EXIT_POWER_CUT,
    EXIT_WATCHDOG,
    HANG_AT_MS,
    MAC,
    NVS_BLOB,
    NVS_FILE,
    NVS_FULL,
    RADIO,
    RADIO_MV,
    REALTIME,
    REPL_ENV,
    RESET_CAUSE,
    RTC_ANCHOR,
    RTC_EPOCH_MS,
    RTC_FILE,
    SAMPLES,
    SLEEP_MS,
    SPAWN_WALL_MS,
    UNIT_FILE,
    WAKE_GPIO,
    WAKE_REASON,
)

BOOT_TIMEOUT_S = 60
# A unit on a radio may open service mode, live in real time; the firmware
# closes it after at most 5 minutes (amr/service_mode.py _MAX_MS).
LIVE_BOOT_TIMEOUT_S = 360
SAMPLES_KEPT_MS = 60_000  # contact samples older than this are history to a boot
# A Ctrl-C ends the app at its next bytecode; a process still there after
# this long (stuck in C) is killed, which leaves the same state behind.
INTERRUPT_WAIT_S = 5.0


class FirmwareCrash(RuntimeError):
    """The firmware ended other than by deep sleep or an injected power cut."""


@dataclass
class Boot:
    """What one run of the firmware did."""

    started_ms: int
    reset_cause: int
    wake_reason: int
    lines: list[str]
    events: list[dict[str, Any]]
    ended_ms: int
    sleep_ms: int | None = None
    power_cut: bool = False
    brownout: bool = False  # the cell sagged below the board's brownout voltage
    watchdog: bool = False  # the app stopped feeding the watchdog: the chip reset
    interrupted: bool = False  # a Ctrl-C on the serial port stopped the app (interrupt())
    # The contact state whose level wakes the chip from this sleep (True:
    # closed), or None if the button was not armed as a wake source.
    wake_on_pressed: bool | None = None


def firmware_for(board: Board, scratch: Path) -> Path:
    """The firmware tree to run for `board`: the committed one when its
    board module (amr/board.py, the reference board's) is this board's, else
    a copy in `scratch` with this board's module, as `amr build` makes it,
    so the app reads the board's own pins."""
    from amrkit.build import BOARD_MODULE, board_module_source

    tree = firmware_dir()
    source = board_module_source(board)
    if (tree / BOARD_MODULE).read_text() == source:
        return tree
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(tree, scratch, ignore=shutil.ignore_patterns("__pycache__", ".*", "image"))
    (scratch / BOARD_MODULE).write_text(source)
    return scratch


@dataclass
class VirtualUnit:
    directory: Path
    board: Board
    battery_mv: int = 3000  # the cell's open-circuit voltage
    resistance_ohm: float = 0.0  # its internal resistance
    firmware: Path = field(default_factory=firmware_dir)
    clock_ms: int = 0
    rtc_epoch_ms: int = 0  # clock_ms when the cell last went in: the chip's RTC counts from it
    samples: list[tuple[int, bool]] = field(default_factory=list)
    boots: list[Boot] = field(default_factory=list)
    commits: int = 0  # NVS commits over the unit's life; power cuts are injected by number
    nvs_full: bool = False  # the flash has no free entries: every NVS write fails
    ble: str | None = None  # "HOST:PORT" of its device on a virtual radio (twin.radio_peer)
    _next_wake: int | None = None
    _asleep: bool = False
    _running: subprocess.Popen[str] | None = None
    _restart_cause: int | None = None  # restarts at once with this cause (brownout, watchdog)
    _wake_on_pressed: bool | None = None  # the button level armed for the sleep in progress
    _hang_at: int | None = None  # an injected hang, for the boot that reaches it
    _awake_since: tuple[float, int] | None = None  # (wall s, clock ms) of the boot running
    _cut_at: int | None = None  # clock when power was pulled from the boot running
    # The app stopped by a Ctrl-C on the serial port (interrupt()), until a
    # soft reset or a power-on starts it again: the clock then, else None.
    _stopped_at: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # samples, unit.json

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.firmware == firmware_dir():
            self.firmware = firmware_for(self.board, self.directory / "firmware")
        if not (self.directory / UNIT_FILE).exists():
            # The chip's surroundings (its cell, its pins) exist before its
            # first boot: a board powered over USB that never ran the app
            # (a blank one, flashed and deployed over the cable) reads them.
            unit = self._unit_file(PWRON_RESET, 0, None, False)
            (self.directory / UNIT_FILE).write_text(json.dumps(unit))

    # -- the world around the unit -------------------------------------

    def press(self, at_ms: float, samples: Iterable[tuple[float, bool]]) -> None:
        """Schedule raw contact samples (times relative to at_ms). Times fall
        on the chip's 1 ms tick; samples in one millisecond keep the order
        given, as the pin interrupts would see them. A unit awake in real
        time feels them as they come."""
        with self._lock:
            self.samples.extend((math.floor(at_ms + t), bool(pressed)) for t, pressed in samples)
            self.samples.sort(key=lambda sample: sample[0])  # stable: same-ms order kept
            if self._awake_since is not None:
                self._update_unit_json({SAMPLES: self._recent_samples()})

    def _recent_samples(self) -> list[tuple[int, bool]]:
        """The samples a boot needs: the last minute's, and the one before
        them that says whether the contact was closed."""
        cutoff = self.clock_ms - SAMPLES_KEPT_MS
        first = next((i for i, (t, _) in enumerate(self.samples) if t > cutoff), len(self.samples))
        return self.samples[max(0, first - 1) :]

    @property
    def awake_in_real_time(self) -> bool:
        """On a radio (amr sim), awake time passes in real time: hosts there
        keep real time, and presses meet the firmware as they happen; deep
        sleep is still skipped."""
        return self.ble is not None

    def awake_clock(self) -> int | None:
        """The clock of a unit awake in real time now, else None."""
        since = self._awake_since
        if since is None or not self.awake_in_real_time:
            return None
        return since[1] + int((time.time() - since[0]) * 1000)

    def _update_unit_json(self, changes: dict[str, Any]) -> None:
        path = self.directory / UNIT_FILE
        if path.exists():
            unit = json.loads(path.read_text())
            unit.update(changes)
            tmp = path.with_suffix(".tmp")  # a running process may read it meanwhile
            tmp.write_text(json.dumps(unit))
            tmp.replace(path)

    def anchor_rtc(self, rtc_ms: int, rate: float) -> None:
        """Tell the serial REPL how the RTC runs now: rtc_ms at this moment,
        `rate` RTC ms per wall ms from here (a sleep fast-forwarded)."""
        with self._lock:
            self._update_unit_json({RTC_ANCHOR: [int(time.time() * 1000), rtc_ms, rate]})

    def power_on(
        self,
        cut_at_commit: int | None = None,
        cut_after: bool = False,
        cut_at_ms: int | None = None,
    ) -> Boot:
        """Insert a cell: RTC memory is lost, flash is kept. The cuts as for run_until()."""
        (self.directory / RTC_FILE).unlink(missing_ok=True)
        with self._lock:
            self._stopped_at = None
        self.rtc_epoch_ms = self.clock_ms
        return self._boot(PWRON_RESET, 0, cut_at_commit, cut_after, cut_at_ms)

    def interrupt(self, at_ms: int | None = None, wait_s: float = INTERRUPT_WAIT_S) -> bool:
        """A Ctrl-C on the serial port (the jig's session): the app stops where
        it is, as a KeyboardInterrupt stops main.py on the chip, and does not
        run again until soft_reset() or power_on(). What it persisted stays
        (flash, RTC memory); what it had not is lost: an alert is reserved in
        flash before its first frame, so it resumes at the next run. An app
        awake now gets SIGINT (KeyboardInterrupt under the unix port), and
        this returns once its process has ended; one asleep simply wakes no
        more. `at_ms`: the clock now, for a unit asleep (one awake in real
        time knows its own). True if the app was running (awake or asleep)."""
        with self._lock:
            if self._stopped_at is not None:
                return False
            proc = self._running
            clock = self.awake_clock()
            self._stopped_at = clock if clock is not None else max(self.clock_ms, at_ms or 0)
            running = proc is not None or self._asleep
            if proc is not None:
                proc.send_signal(signal.SIGINT)
        if proc is not None:
            # The boot's thread reaps the process and books the boot.
            deadline = time.monotonic() + wait_s
            while self._running is proc:
                if time.monotonic() > deadline:
                    proc.kill()
                    deadline = time.monotonic() + wait_s
                time.sleep(0.005)
        return running

    @property
    def stopped(self) -> bool:
        """Is the app stopped by a Ctrl-C (interrupt()), waiting for a restart?"""
        return self._stopped_at is not None

    def soft_reset(self) -> Boot:
        """A soft reboot (Ctrl-D at the friendly REPL, machine.soft_reset()):
        main.py runs again at once, RTC memory kept, reset cause SOFT_RESET."""
        with self._lock:
            if self._stopped_at is not None:
                self.clock_ms = max(self.clock_ms, self._stopped_at)
            self._stopped_at = None
        self._restart_cause = None
        return self._boot(SOFT_RESET, 0, None, False, None)

    def set_battery(self, mv: int, resistance_ohm: float | None = None) -> None:
        """A new cell (open-circuit voltage, internal resistance), seen from
        the next boot and by the REPL now."""
        self.battery_mv = mv
        if resistance_ohm is not None:
            self.resistance_ohm = resistance_ohm
        with self._lock:
            self._update_unit_json(self._cell())

    def loaded_mv(self, state: str) -> int:
        """The cell's voltage while the unit draws its current in `state`."""
        ma = self.board.currents_ua[state] / 1000
        return round(self.battery_mv - ma * self.resistance_ohm)

    def _cell(self) -> dict[str, Any]:
        """What the emulations see of the cell: the ADC reads it under the
        load of the moment (the CPU, and the radio if it is on); the radio
        starting may brown the chip out."""
        pin = str(self.board.battery_adc_pin)
        return {
            ADC_UV: {state: {pin: self.board.adc_uv(self.loaded_mv(state))} for state in DRAWS},
            RADIO_MV: self.loaded_mv(ADVERTISING),
            BROWNOUT_MV: self.board.brownout_mv,
        }

    def jump(self, ms: int) -> None:
        """The RTC jumps ms ahead while the unit sleeps; its sleep timer does
        not, so it wakes when it would have and finds the clock moved on."""
        self.clock_ms += ms
        if self._next_wake is not None:
            self._next_wake += ms

    def cut_now(self) -> bool:
        """Pull the cell from a unit awake in real time, this instant; False
        if it is not awake (then power_off() applies)."""
        with self._lock:
            proc, clock = self._running, self.awake_clock()
            if proc is None or clock is None:
                return False
            self._cut_at = clock
            self._asleep = False  # off, from now until power_on()
            proc.kill()
            return True

    def power_off(self, at_ms: int) -> None:
        """Pull the cell while the unit sleeps: it stays off until power_on()."""
        self.clock_ms = max(self.clock_ms, at_ms)
        self._asleep = False
        self._restart_cause = None
        self._next_wake = None

    def run_until(
        self,
        end_ms: int,
        cut_at_commit: int | None = None,
        cut_after: bool = False,
        on_boot: Callable[[Boot], None] | None = None,
        cut_at_ms: int | None = None,
    ) -> list[Boot]:
        """Let the unit sleep and wake until the clock reaches end_ms.

        on_boot sees each boot as it ends (a receiver nearby, say). A power
        cut stops the run: the unit stays off until power_on(). Cuts: at
        the NVS commit numbered cut_at_commit (before or after it is
        written), or when the clock reaches cut_at_ms, awake or asleep.
        """
        done: list[Boot] = []
        while self._asleep and self._stopped_at is None:
            wake, reason = self.next_wake()
            if cut_at_ms is not None and (wake is None or wake > cut_at_ms) and cut_at_ms <= end_ms:
                self.power_off(cut_at_ms)  # the cell goes while the unit sleeps
                break
            if wake is None or wake > end_ms:
                self.clock_ms = max(self.clock_ms, end_ms)
                break
            self.clock_ms = wake
            cause = DEEPSLEEP_RESET if self._restart_cause is None else self._restart_cause
            boot = self._boot(cause, reason, cut_at_commit, cut_after, cut_at_ms)
            done.append(boot)
            if on_boot is not None:
                on_boot(boot)
            if boot.power_cut:
                break
        return done

    def next_wake(self) -> tuple[int | None, int]:
        """When a sleeping unit wakes next, and why (timer or button)."""
        if self._stopped_at is not None:
            return None, TIMER_WAKE  # stopped at the REPL: nothing wakes it
        if self._restart_cause is not None:
            return self.clock_ms, 0
        button = self._button_wake()
        if button is not None and (self._next_wake is None or button < self._next_wake):
            return button, GPIO_WAKE
        return self._next_wake, TIMER_WAKE

    def _button_wake(self) -> int | None:
        """When the button pin first stands at the level armed for this sleep.
        The chip wakes on a level, not an edge: a contact already there when
        the unit went to sleep wakes it at once."""
        wanted = self._wake_on_pressed
        if wanted is None:
            return None
        with self._lock:
            if self.contact_closed(self.clock_ms) == wanted:
                return self.clock_ms
            return next((t for t, p in self.samples if t > self.clock_ms and p == wanted), None)

    def contact_closed(self, at_ms: int) -> bool:
        """The contact's state at at_ms: the last sample at or before it."""
        closed = False
        for t, pressed in self.samples:
            if t > at_ms:
                break
            closed = pressed
        return closed

    def fill_flash(self, full: bool = True) -> None:
        """The NVS partition has no room left (or again has): from now on
        every write fails as ESP-IDF's does, reads still work."""
        self.nvs_full = full
        with self._lock:
            self._update_unit_json({NVS_FULL: full})

    def hang(self, at_ms: int) -> None:
        """The app hangs at at_ms in the boot awake then (a stuck driver, a
        bug): only the watchdog, if the firmware armed it, gets it going."""
        self._hang_at = at_ms
        with self._lock:
            self._update_unit_json({HANG_AT_MS: at_ms})

    @property
    def asleep(self) -> bool:
        """False while the unit is off (after a power cut, until power_on)."""
        return self._asleep

    # -- one boot --------------------------------------------------------

    def _boot(
        self,
        reset_cause: int,
        wake_reason: int,
        cut_at_commit: int | None,
        cut_after: bool,
        cut_at_ms: int | None,
    ) -> Boot:
        d = self.directory
        for name in (EVENTS_FILE, EXIT_FILE):
            (d / name).unlink(missing_ok=True)
        unit = self._unit_file(reset_cause, wake_reason, cut_at_commit, cut_after)
        unit[CUT_AT_MS] = cut_at_ms
        with self._lock:
            unit[SAMPLES] = self._recent_samples()
            (d / UNIT_FILE).write_text(json.dumps(unit))
            self._awake_since = (unit[SPAWN_WALL_MS] / 1000, self.clock_ms)
        env = {
            **os.environ,
            DIR_ENV: str(d),
            "MICROPYPATH": os.pathsep.join([str(platform_dir()), str(self.firmware), ".frozen"]),
        }
        with subprocess.Popen(
            [micropython_binary(), str(self.firmware / "main.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=d,
        ) as proc:
            with self._lock:
                self._running = proc
                if self._stopped_at is not None:  # a Ctrl-C as it starts
                    proc.send_signal(signal.SIGINT)
            try:
                stdout, stderr = proc.communicate(
                    timeout=LIVE_BOOT_TIMEOUT_S if self.ble else BOOT_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            finally:
                self._running = None
                with self._lock:
                    self._awake_since = None
        events_path = d / EVENTS_FILE
        events = (
            [json.loads(line) for line in events_path.read_text().splitlines()]
            if events_path.exists()
            else []
        )
        exit_path = d / EXIT_FILE
        cut_at, self._cut_at = self._cut_at, None
        with self._lock:
            stopped_at = self._stopped_at
        interrupted = stopped_at is not None and cut_at is None and not exit_path.exists()
        if interrupted:  # a Ctrl-C: what it persisted until then stands, RTC memory too
            info = {
                CLOCK_MS: max(self.clock_ms, stopped_at or 0),
                EXIT: None,
                COMMITS: max([self.commits] + [e["n"] for e in events if e["kind"] == "commit"]),
            }
        elif cut_at is not None:  # pulled mid-boot: what it did until then stands
            info = {
                CLOCK_MS: cut_at,
                EXIT: EXIT_POWER_CUT,
                COMMITS: max([self.commits] + [e["n"] for e in events if e["kind"] == "commit"]),
            }
            (d / RTC_FILE).unlink(missing_ok=True)
        elif not exit_path.exists():
            raise FirmwareCrash(
                f"firmware in {d} ended without deep sleep (exit {proc.returncode}):\n"
                + stdout
                + stderr
            )
        else:
            info = json.loads(exit_path.read_text())
        boot = Boot(
            started_ms=self.clock_ms,
            reset_cause=reset_cause,
            wake_reason=wake_reason,
            lines=stdout.splitlines(),
            events=events,
            ended_ms=info[CLOCK_MS],
            sleep_ms=info.get(SLEEP_MS),
            power_cut=info[EXIT] == EXIT_POWER_CUT,
            brownout=info[EXIT] == EXIT_BROWNOUT,
            watchdog=info[EXIT] == EXIT_WATCHDOG,
            interrupted=interrupted,
            wake_on_pressed=self._armed_level(info.get(WAKE_GPIO)),
        )
        self.commits = info[COMMITS]
        self.boots.append(boot)
        self.clock_ms = boot.ended_ms
        self._asleep = not boot.power_cut
        # RTC memory survives both; the chip restarts at once. The ESP32 port
        # reports a brownout reset as a power-on reset.
        self._restart_cause = PWRON_RESET if boot.brownout else WDT_RESET if boot.watchdog else None
        if boot.watchdog or (self._hang_at is not None and boot.ended_ms >= self._hang_at):
            self._hang_at = None  # a hang happens once; the reset clears it
        self._wake_on_pressed = boot.wake_on_pressed
        self._next_wake = None if boot.sleep_ms is None else self.clock_ms + boot.sleep_ms
        if stopped_at is not None and not boot.power_cut:
            # Stopped at the REPL, whether or not it got to sleep: powered
            # (asleep, as far as the power domain goes), but nothing wakes it.
            self._asleep = True
            self._restart_cause = None
            self._next_wake = None
        return boot

    def _unit_file(
        self, reset_cause: int, wake_reason: int, cut_at_commit: int | None, cut_after: bool
    ) -> dict[str, Any]:
        """unit.json for the next boot, but its samples (taken under the lock)."""
        return {
            CLOCK_MS: self.clock_ms,
            BOOT_MS: self.board.wake_to_app_ms,
            RESET_CAUSE: reset_cause,
            WAKE_REASON: wake_reason,
            SAMPLES: [],
            BUTTON_PIN: self.board.button_pin,
            ACTIVE_LOW: self.board.button_active_low,
            MAC: self.board.mac_for(self.directory.name),
            COMMITS: self.commits,
            CUT_AT_COMMIT: cut_at_commit,
            CUT_AFTER: cut_after,
            CUT_AT_MS: None,
            NVS_FULL: self.nvs_full,
            RADIO: self.ble,
            HANG_AT_MS: self._hang_at,
            REALTIME: self.awake_in_real_time,
            SPAWN_WALL_MS: int(time.time() * 1000),
            # Awake in real time the RTC runs with the wall clock; else the
            # boot's own virtual clock stands for it.
            RTC_ANCHOR: (
                [int(time.time() * 1000), self.clock_ms, 1.0] if self.awake_in_real_time else None
            ),
            RTC_EPOCH_MS: self.rtc_epoch_ms,
            **self._cell(),
        }

    def halt(self) -> None:
        """Stop a boot in progress (the twin shutting down): the run ends as
        a FirmwareCrash in the thread that started it."""
        proc = self._running
        if proc is not None:
            proc.kill()

    def _armed_level(self, wake_gpio: list[Any] | None) -> bool | None:
        """The contact state that wakes the chip, from esp32.wake_on_gpio()'s
        pins and level (True: any pin high)."""
        if not wake_gpio or self.board.button_pin not in wake_gpio[0]:
            return None
        high = bool(wake_gpio[1])
        return not high if self.board.button_active_low else high

    def wired(
        self, source: str, cut_at_commit: int | None = None, cut_after: bool = False
    ) -> tuple[bool, str]:
        """Run `source` on the unit's files as its serial REPL runs a
        program (the wired link, without the serial port): (power cut, its
        output). cut_at_commit cuts power at that NVS commit of the unit's
        life, as for a boot: RTC memory is lost and the unit stays off until
        power_on()."""
        unit = self._unit_file(PWRON_RESET, 0, cut_at_commit, cut_after)
        with self._lock:
            (self.directory / UNIT_FILE).write_text(json.dumps(unit))
        env = {
            **os.environ,
            DIR_ENV: str(self.directory),
            REPL_ENV: "1",
            "MICROPYPATH": os.pathsep.join([str(platform_dir()), str(self.firmware), ".frozen"]),
        }
        proc = subprocess.run(
            [micropython_binary(), "-c", source],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.directory,
            timeout=BOOT_TIMEOUT_S,
            check=False,
        )
        if proc.returncode == EXIT_POWER_CUT:
            (self.directory / RTC_FILE).unlink(missing_ok=True)
            self._asleep = False
            self._next_wake = None
            return True, proc.stdout
        if proc.returncode != 0:
            raise FirmwareCrash(f"wired program in {self.directory} failed:\n{proc.stderr}")
        return False, proc.stdout

    # -- inspection ------------------------------------------------------

    def nvs(self) -> dict[str, dict[str, Any]]:
        path = self.directory / NVS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def rtc_memory(self) -> bytes:
        path = self.directory / RTC_FILE
        return path.read_bytes() if path.exists() else b""

    def air(self, ad: bytes, from_ms: int, to_ms: int) -> None:
        """Something nearby advertises `ad` between these times (an ack)."""
        with (self.directory / AIR_FILE).open("a") as f:
            f.write(json.dumps({AIR_FROM: from_ms, AIR_TO: to_ms, AIR_AD: ad.hex()}) + "\n")

    def write_nvs(self, namespace: str, blobs: dict[str, bytes]) -> None:
        """Factory-write blobs into the unit's NVS (the flash image)."""
        data = self.nvs()
        space = data.setdefault(namespace, {})
        for key, value in blobs.items():
            space[key] = {NVS_BLOB: value.hex()}
        (self.directory / NVS_FILE).write_text(json.dumps(data))
