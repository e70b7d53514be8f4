# Driver: the chip. The only module, with radio.py and nvs.py, that touches
# machine/esp32; written against stock MicroPython for ESP32.
import os
import time
from array import array

import esp32
import machine
from machine import ADC, RTC, Pin

from amr import board
from amr.compat import const

BUTTON_WAKE = const(1)
TIMER_WAKE = const(2)
COLD_BOOT = const(3)

# Button edges are captured by a pin interrupt into a ring buffer, so every
# edge keeps its own time however late the loop reads it. The ESP32 port
# wakes light sleep only from ext0/ext1 pins, which the C3 lacks, and BLE
# advertising needs the CPU up anyway: the awake loop idles in short slices.
_EDGE_SLOTS = const(64)  # a power of two; more than a bounce burst holds
_EDGE_MASK = const(63)
IDLE_SLICE_MS = const(20)
# Longest the awake app may go without feeding the watchdog; far above any
# step it takes (a flash commit, a radio restart), far below a press's worth.
WATCHDOG_MS = const(5000)


class Chip:
    def __init__(self):
        pull = {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN}.get(board.BUTTON_PULL, -1)
        self.button = Pin(board.PIN_BUTTON, Pin.IN, pull)
        self._rtc = RTC()
        self._active = 0 if board.BUTTON_ACTIVE_LOW else 1
        self._edge_ms = array("i", range(_EDGE_SLOTS))  # contents are overwritten
        self._edge_level = bytearray(_EDGE_SLOTS)
        self._written = 0
        self._read = 0
        self._on_edge = self._record  # bound once: the interrupt path allocates nothing
        self._wdt = None

    def reset_cause(self):
        return machine.reset_cause()

    def mac(self):
        """The chip's factory (eFuse) MAC, aa:bb:cc:dd:ee:ff: what esptool reads
        in the store, so the registry can tell which unit is on the cable. Never
        on the air: the radio uses rotating private addresses."""
        return ":".join("%02x" % b for b in machine.unique_id())

    def wake(self):
        """Why the app runs: BUTTON_WAKE, TIMER_WAKE or COLD_BOOT."""
        if machine.reset_cause() != machine.DEEPSLEEP_RESET:
            return COLD_BOOT
        reason = machine.wake_reason()
        if reason == machine.TIMER_WAKE:
            return TIMER_WAKE
        return BUTTON_WAKE  # GPIO/EXT wake: the only other source we enable

    def pressed(self):
        return self.button.value() == self._active

    def listen(self):
        """Start capturing button edges (call before reading the level)."""
        self.button.irq(self._on_edge, Pin.IRQ_FALLING | Pin.IRQ_RISING)

    def _record(self, pin):
        i = self._written & _EDGE_MASK
        self._edge_ms[i] = time.ticks_ms()  # type: ignore[call-overload]  # a small int on the chip
        self._edge_level[i] = pin.value()
        self._written += 1

    def next_edge(self):
        """(ticks, pressed) of the oldest unread edge, or None.

        If chatter overran the buffer the oldest edges are gone; the newest
        ones, which carry the current level, are kept.
        """
        if self._written - self._read > _EDGE_SLOTS:
            self._read = self._written - _EDGE_SLOTS
        if self._read == self._written:
            return None
        i = self._read & _EDGE_MASK
        self._read += 1
        return self._edge_ms[i], self._edge_level[i] == self._active

    def ticks(self):
        """ms since boot: the gesture clock."""
        return time.ticks_ms()

    def clock_ms(self):
        """ms on the RTC clock, which runs through deep sleep."""
        return time.time_ns() // 1000000

    def random_u32(self):
        """From the hardware RNG (the radio's noise on the ESP32)."""
        return int.from_bytes(os.urandom(4), "little")

    def idle(self, ms):
        """Let time pass with the CPU idle; edges are captured meanwhile."""
        time.sleep_ms(ms)

    def battery_uv(self):
        """ADC microvolts at the divider; the divider is powered only now."""
        enable = Pin(board.PIN_BATT_EN, Pin.OUT, value=1)
        time.sleep_ms(board.BATT_SETTLE_MS)
        uv = ADC(Pin(board.PIN_BATT_ADC), atten=ADC.ATTN_11DB).read_uv()
        enable.value(0)
        return uv

    def rtc_memory(self):
        return self._rtc.memory()

    def keep(self, data):
        """Store `data` in RTC memory, which survives deep sleep only."""
        self._rtc.memory(data)

    def watch(self):
        """Arm the hardware watchdog: from now on a hang resets the chip. It
        cannot be disarmed; deep sleep ends it (every wake is a reboot)."""
        self._wdt = machine.WDT(timeout=WATCHDOG_MS)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def deepsleep(self, ms, on_release=False):
        """Sleep until the timer or the button; never returns (wake is a reboot).

        The chip wakes on the pin's level, not an edge: a contact still closed
        would wake it at once, so a stuck one is armed to wake on release.
        """
        wake_high = on_release == board.BUTTON_ACTIVE_LOW
        esp32.wake_on_gpio(
            (self.button,), esp32.WAKEUP_ANY_HIGH if wake_high else esp32.WAKEUP_ALL_LOW
        )
        machine.deepsleep(ms)
