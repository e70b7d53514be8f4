"""A virtual ESP32 dev board behind a USB-UART bridge.

The bridge's DTR and RTS lines drive the chip's EN (reset) and boot
strapping pin through the usual two-transistor auto-reset circuit:

    DTR RTS | EN    boot pin (GPIO9 on the C3, IO0 on the ESP32)
     0   0  | high  high
     1   1  | high  high
     0   1  | LOW   high        (RTS asserted, DTR not: chip held in reset)
     1   0  | high  LOW         (DTR asserted, RTS not: boot pin pulled low)

EN has an RC delay (10 kohm, ~1 uF on a DevKit): the chip leaves reset once
EN has stayed released for ``en_release_s`` and samples the boot pin then.
Boot pin low -> ROM download mode (``RomLoader``); high -> the ROM checks the
image in flash and, if it would run, hands the UART to the twin's
``on_boot`` callback (MicroPython's REPL, later); if not, it prints why and
stops, as a board with a bad image does.

Over RFC 2217 the two lines cannot change together: each change is its own
message, and pyserial's client waits for the server's acknowledgement by
polling every 50 ms (or sleeps 100 ms per change with ``ign_set_control``).
esptool's classic reset releases EN by asserting DTR while RTS is still
asserted, then deasserts RTS to pull the boot pin low: between the two writes
the lines sit at (1, 1) -- EN released, boot pin high. On a USB bridge that
lasts microseconds; over the network 50-100 ms, longer than any RC delay.
So when EN has risen and the lines are still at (1, 1), the board takes that
for two writes in flight and samples the boot pin when the lines leave
(1, 1) (or at ``line_settle_s`` after EN rose, if they stay there, as when a
terminal program holds both asserted). Released straight to (0, 0) (a hard
reset) or to (1, 0) (UnixTightReset, which sets both lines at once) the
board samples at ``en_release_s``, like the hardware.

The UART is a pair of byte streams: ``receive()`` takes what the host sends
(the server calls it), ``send()`` goes to whichever host is attached (bytes
are dropped when none is, as on a real UART with nobody listening).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from amrkit.chips import chip_named
from amrkit.twin.serial.flash import DEFAULT_FLASH_SIZE, FLASH_FILE, FlashMemory
from amrkit.twin.serial.image import BootCheck, boot_image_check
from amrkit.twin.serial.rom import CHIP, RomLoader

if TYPE_CHECKING:
    from amrkit.boards import Board

log = logging.getLogger("amrkit.twin.serial")

EN_RELEASE_S = 0.025  # EN's RC rise to the reset threshold; esptool holds the boot pin 50 ms
LINE_SETTLE_S = 0.5  # longest wait for lines released at (1, 1) to settle (RFC 2217)
ROM_BANNER = "ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\n"
RESET_REASONS = {
    "POWERON": "0x1 (POWERON)",
    "reboot": "0x3 (RTC_SW_SYS_RST)",
    "run user code": "0x3 (RTC_SW_SYS_RST)",
    "RTC watchdog": "0x10 (RTCWDT_RTC_RESET)",
}
BOOT_DOWNLOAD = "boot:0x5 (DOWNLOAD(USB/UART0/1))"
BOOT_FLASH = "boot:0xc (SPI_FAST_FLASH_BOOT)"


class UartHandler(Protocol):
    """Whatever runs on the chip and owns its UART after a boot."""

    def receive(self, data: bytes) -> None:
        """Bytes the host sent (called with the board lock held; return promptly)."""

    def stop(self) -> None:
        """The chip was reset or powered off: release everything (processes, threads)."""


@dataclass(frozen=True)
class BootContext:
    """Handed to ``on_boot`` when the ROM starts the image in flash."""

    board: VirtualBoard
    number: int  # 1 for the first boot of this board object
    cause: str  # "POWERON", "reboot", "run user code", "RTC watchdog"
    image: BootCheck

    def send(self, data: bytes) -> None:
        """UART output of this boot; dropped once the chip has been reset since."""
        self.board.send(data, boot=self.number)


OnBoot = Callable[[BootContext], UartHandler]


@dataclass(frozen=True)
class BootRecord:
    number: int
    download: bool  # True: ROM download mode; False: booted (or tried to boot) from flash
    cause: str
    check: BootCheck | None  # the image verdict for a flash boot
    console: str  # what the ROM printed
    at: float = field(default_factory=time.monotonic)

    @property
    def started_app(self) -> bool:
        return not self.download and self.check is not None and self.check.ok


class EchoApp:
    """Placeholder for the app until the MicroPython REPL handler exists: echoes."""

    def __init__(self, context: BootContext) -> None:
        self.context = context
        self.received = bytearray()

    def receive(self, data: bytes) -> None:
        self.received += data
        self.context.send(data)

    def stop(self) -> None:
        pass


class Halted:
    """A chip that did not boot: ignores the UART."""

    def receive(self, data: bytes) -> None:
        pass

    def stop(self) -> None:
        pass


class VirtualBoard:
    """One unit's chip, flash and auto-reset circuit."""

    def __init__(
        self,
        directory: Path,
        mac: bytes,
        chip: str = CHIP.name,
        flash_size: int = DEFAULT_FLASH_SIZE,
        on_boot: OnBoot | None = None,
        en_release_s: float = EN_RELEASE_S,
        line_settle_s: float = LINE_SETTLE_S,
    ) -> None:
        if chip_named(chip) != CHIP:
            raise ValueError(f"the serial emulation models the {CHIP.name} ROM only, not {chip}")
        self.directory = directory
        self.chip = chip
        self.mac = bytes(mac)
        self.flash = FlashMemory(directory / FLASH_FILE, flash_size)
        self.on_boot: OnBoot = on_boot or EchoApp
        self.en_release_s = en_release_s
        self.line_settle_s = max(line_settle_s, en_release_s)
        self.boots: list[BootRecord] = []
        self.handler: UartHandler | None = None
        self.dtr = False
        self.rts = False
        self.powered = False
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._sink: Callable[[bytes], None] | None = None
        self._generation = 0  # bumped on every reset: stale timers and senders are ignored
        self._boot_number = 0
        self._timer: threading.Timer | None = None
        self._timers: list[threading.Timer] = []  # all started, so power_off can join them
        self._watching = False  # EN is up with the lines at (1, 1): waiting for them to settle

    @classmethod
    def for_unit(cls, directory: Path, board: Board, on_boot: OnBoot | None = None) -> VirtualBoard:
        """The board of a twin unit: chip from the profile, MAC as the twin derives it."""
        return cls(
            directory, bytes.fromhex(board.mac_for(directory.name)), board.chip, on_boot=on_boot
        )

    # -- the auto-reset circuit ------------------------------------------

    @property
    def en_low(self) -> bool:
        return self.rts and not self.dtr

    @property
    def boot_pin_low(self) -> bool:
        return self.dtr and not self.rts

    def set_lines(self, dtr: bool | None = None, rts: bool | None = None) -> None:
        """Change DTR and/or RTS (True = asserted) in one step."""
        with self._lock:
            was_low = self.en_low
            if dtr is not None:
                self.dtr = dtr
            if rts is not None:
                self.rts = rts
            if not self.powered:
                return
            if was_low != self.en_low:
                if self.en_low:
                    self._hold_in_reset()
                else:
                    self._release_en()
            elif self._watching and not (self.dtr and self.rts):
                self._boot("POWERON", download=self.boot_pin_low)  # settled: see the module doc

    def _hold_in_reset(self) -> None:
        self._generation += 1
        self._watching = False
        self._cancel_timer()
        self._stop_handler()

    def _release_en(self) -> None:
        self._generation += 1
        self._schedule(self.en_release_s, self._en_risen)

    def _schedule(self, delay: float, action: Callable[[int], None]) -> None:
        self._cancel_timer()
        timer = threading.Timer(delay, action, args=(self._generation,))
        timer.daemon = True
        timer.name = f"EN {self.directory.name}"
        self._timer = timer
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _en_risen(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or not self.powered or self.en_low:
                return
            self._timer = None
            if self.dtr and self.rts:
                self._watching = True
                self._schedule(self.line_settle_s - self.en_release_s, self._window_closed)
            else:
                self._boot("POWERON", download=self.boot_pin_low)

    def _window_closed(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or not self._watching:
                return
            self._timer = None
            self._boot("POWERON", download=False)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- power -------------------------------------------------------------

    def power_on(self) -> None:
        """Plug the board in: the chip boots unless RTS holds EN low."""
        with self._lock:
            if self.powered:
                return
            self.powered = True
            if not self.en_low:
                self._boot("POWERON", download=self.boot_pin_low)

    def power_off(self) -> None:
        with self._lock:
            self.powered = False
            self._generation += 1
            self._watching = False
            self._cancel_timer()
            timers, self._timers = self._timers, []
            self._stop_handler()
            self._changed.notify_all()
        for timer in timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()

    def run_from_flash(self, cause: str, delay: float = 0.0) -> None:
        """A reset that boots from flash whatever the lines say (ROM commands,
        watchdog), ``delay`` seconds from now unless the chip is reset first."""
        with self._lock:
            if not self.powered:
                return
            if delay <= 0:
                self._boot(cause, download=False)
                return

            def bite(generation: int) -> None:
                with self._lock:
                    if generation == self._generation and self.powered:
                        self._timer = None
                        self._boot(cause, download=False)

            self._schedule(delay, bite)

    def software_reset(self, cause: str) -> None:
        """A reset from software (the flasher stub's reboot): the boot mode the
        strapping pins latched at the last power-on or EN reset stays, so a
        chip in download mode comes back in the ROM loader."""
        with self._lock:
            if self.powered:
                self._boot(cause, download=True)

    # -- the UART ----------------------------------------------------------

    def attach(self, sink: Callable[[bytes], None] | None) -> None:
        """Connect the UART to a host (None: disconnect)."""
        with self._lock:
            self._sink = sink

    def receive(self, data: bytes) -> None:
        with self._lock:
            if self.handler is not None and data:
                self.handler.receive(data)

    def send(self, data: bytes, boot: int | None = None) -> None:
        """UART TX. With ``boot``, only while that boot is still the running one."""
        with self._lock:
            if boot is not None and (boot != self._boot_number or self.handler is None):
                return
            sink = self._sink
            if sink is not None and data:
                sink(data)

    # -- booting -----------------------------------------------------------

    def _stop_handler(self) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            try:
                handler.stop()
            except Exception:
                log.exception("stopping %r failed", handler)

    def _boot(self, cause: str, download: bool) -> None:
        self._generation += 1
        self._watching = False
        self._cancel_timer()
        self._stop_handler()
        self._boot_number += 1
        number = self._boot_number
        reason = RESET_REASONS.get(cause, "0x1 (POWERON)")
        check: BootCheck | None = None
        if download:
            text = f"{ROM_BANNER}rst:{reason},{BOOT_DOWNLOAD}\r\nwaiting for download\r\n"
            self.send(text.encode())
            self.handler = RomLoader(self)
        else:
            check = boot_image_check(self.flash.path, self.chip)
            text = f"{ROM_BANNER}rst:{reason},{BOOT_FLASH}\r\n"
            if check.ok:
                text += f"SPIWP:{check.wp_pin:#x}\r\nmode:{check.flash_mode}, clock div:1\r\n"
                text += "".join(f"load:{a:#010x},len:{n:#x}\r\n" for a, n in check.segments)
                text += f"entry {check.entry:#010x}\r\n"
            else:
                text += f"{check.reason}\r\n"
            self.send(text.encode())
            self.handler = Halted()  # also lets the app send() from inside on_boot
            if check.ok:
                try:
                    self.handler = self.on_boot(BootContext(self, number, cause, check))
                except Exception:
                    log.exception("%s: on_boot failed; the chip stays halted", self.directory)
        self.boots.append(BootRecord(number, download, cause, check, text))
        log.info("%s: boot %d (%s): %s", self.directory.name, number, cause, text.strip())
        self._changed.notify_all()

    def wait_for_boot(self, count: int, timeout: float = 5.0) -> BootRecord:
        """Block until the board has booted ``count`` times in all; return that boot."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.boots) >= count, timeout):
                raise TimeoutError(f"{len(self.boots)} boots after {timeout} s, wanted {count}")
            return self.boots[count - 1]
