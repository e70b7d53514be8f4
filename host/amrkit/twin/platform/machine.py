# Emulation of the parts of MicroPython's `machine` (ESP32 port) the firmware
# uses, on the virtual unit (see _twin.py). Constants have the ESP32 values.
import os

import _twin
from _contract import (
    ACTIVE_LOW,
    ADC_UV,
    BUTTON_PIN,
    EXIT_SLEEP,
    MAC,
    RESET,
    RESET_CAUSE,
    RTC_FILE,
    SLEEP_MS,
    WAKE_GPIO,
    WAKE_REASON,
)

from amr.contract import (  # noqa: F401  (the module's own constants, as on the chip)
    DEEPSLEEP_RESET,
    EXT0_WAKE,
    EXT1_WAKE,
    HARD_RESET,
    PWRON_RESET,
    SOFT_RESET,
    TIMER_WAKE,
    TOUCHPAD_WAKE,
    ULP_WAKE,
    WDT_RESET,
)

PIN_WAKE = EXT0_WAKE

IDLE = 1
SLEEP = 2
DEEPSLEEP = 4

_wake_pins = {}  # Pin id -> level that wakes from light sleep


def reset_cause():
    return _twin.UNIT[RESET_CAUSE]


def wake_reason():
    return _twin.UNIT[WAKE_REASON]


def unique_id():
    return bytes.fromhex(_twin.UNIT[MAC])


def freq(hz=None):
    return 160000000 if hz is None else None


def lightsleep(time_ms=None):
    """Sleep until time_ms pass or a pin configured with wake=SLEEP is at its level."""
    start = _twin.now()
    end = None if time_ms is None else start + time_ms
    for pin_id, level in _wake_pins.items():
        if _pin_level(pin_id, start) == level:
            return
        t = _next_level(pin_id, start, level)
        if t is not None and (end is None or t < end):
            end = t
    if end is None:
        raise RuntimeError("lightsleep() with no timeout and no wake source would never return")
    _twin.advance_to(end)


def deepsleep(time_ms=None):
    _twin.stop(EXIT_SLEEP, {SLEEP_MS: time_ms, WAKE_GPIO: _twin.wake_gpio})


class WDT:
    """The task watchdog: once started it cannot be stopped; a chip that is
    not fed within the timeout resets with WDT_RESET (RTC memory kept).
    Deep sleep ends it, as every wake is a reboot."""

    def __init__(self, *, id=0, timeout=5000):
        _twin.arm_watchdog(timeout)

    def feed(self):
        _twin.feed_watchdog()


def reset():
    _twin.stop(EXIT_SLEEP, {RESET: True})


def soft_reset():
    # As on the chip: SystemExit, which the REPL turns into a soft reboot
    # (from the friendly REPL, main.py runs again: twin/serial/_repl.py).
    raise SystemExit


def _is_button(pin_id):
    return pin_id == _twin.UNIT[BUTTON_PIN]


def _pin_level(pin_id, t):
    if not _is_button(pin_id):
        return _outputs.get(pin_id, 1)
    pressed = _twin.pressed_at(t)
    return (0 if pressed else 1) if _twin.UNIT[ACTIVE_LOW] else (1 if pressed else 0)


def _next_level(pin_id, t, level):
    if not _is_button(pin_id):
        return None
    active = 0 if _twin.UNIT[ACTIVE_LOW] else 1
    return _twin.next_change(t, level == active)


_outputs = {}


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None, hold=None):
        self._id = id
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None, hold=None):
        if mode != -1:
            self._mode = mode
        if value is not None:
            _outputs[self._id] = 1 if value else 0

    def value(self, x=None):
        if x is None:
            return _pin_level(self._id, _twin.now())
        _outputs[self._id] = 1 if x else 0
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        if trigger in (Pin.WAKE_LOW, Pin.WAKE_HIGH):
            if wake is None or not wake & (SLEEP | DEEPSLEEP):
                raise ValueError("bad wake value")
            _wake_pins[self._id] = 0 if trigger == Pin.WAKE_LOW else 1
            return None
        if handler is not None and _is_button(self._id):
            pin = self

            def deliver(pressed):
                rising = (not pressed) if _twin.UNIT[ACTIVE_LOW] else pressed
                if trigger & (Pin.IRQ_RISING if rising else Pin.IRQ_FALLING):
                    handler(pin)

            _twin.listen(deliver)
        return None

    def __repr__(self):
        return "Pin(%d)" % self._id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, id, *, sample_ns=None, atten=ATTN_0DB):
        self._pin = id._id if isinstance(id, Pin) else id

    def read_uv(self):
        return _twin.latest()[ADC_UV][_twin.drawing].get(str(self._pin), 0)

    def read_u16(self):
        # 11 dB full scale on the C3 is about 2.5 V.
        return min(65535, self.read_uv() * 65535 // 2500000)


class RTC:
    _MAX = 2048  # MICROPY_HW_RTC_USER_MEM_MAX on the ESP32 port

    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        path = _twin.DIR + "/" + RTC_FILE
        if data is None:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError:
                return b""
        if len(data) > RTC._MAX:
            raise ValueError("buffer too long")
        # One step, as the chip's memcpy is: a KeyboardInterrupt (the jig's
        # Ctrl-C) between open and write must not leave RTC memory empty.
        with open(path + ".tmp", "wb") as f:
            f.write(bytes(data))
        os.rename(path + ".tmp", path)
        return None
