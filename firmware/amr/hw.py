# Driver: the chip. The only module, with radio.py and nvs.py, that touches
# machine/esp32; written against stock MicroPython for ESP32.
import time

import esp32
import machine
from machine import ADC, RTC, Pin

from amr import board
from amr.compat import const

BUTTON_WAKE = const(1)
TIMER_WAKE = const(2)
COLD_BOOT = const(3)


class Chip:
    def __init__(self):
        pull = {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN}.get(board.BUTTON_PULL, -1)
        self.button = Pin(board.PIN_BUTTON, Pin.IN, pull)
        self._rtc = RTC()

    def reset_cause(self):
        return machine.reset_cause()

    def wake(self):
        """Why the app runs: BUTTON_WAKE, TIMER_WAKE or COLD_BOOT."""
        if machine.reset_cause() != machine.DEEPSLEEP_RESET:
            return COLD_BOOT
        reason = machine.wake_reason()
        if reason == machine.TIMER_WAKE:
            return TIMER_WAKE
        return BUTTON_WAKE  # GPIO/EXT wake: the only other source we enable

    def pressed(self):
        return self.button.value() == (0 if board.BUTTON_ACTIVE_LOW else 1)

    def ticks(self):
        """ms since boot: the gesture clock."""
        return time.ticks_ms()

    def clock_ms(self):
        """ms on the RTC clock, which runs through deep sleep."""
        return time.time_ns() // 1000000

    def wait_edge(self, ms):
        """Light-sleep until the button changes level or `ms` (if not None) pass."""
        level = Pin.WAKE_HIGH if self.pressed() == bool(board.BUTTON_ACTIVE_LOW) else Pin.WAKE_LOW
        self.button.irq(trigger=level, wake=machine.SLEEP)
        if ms is None:
            machine.lightsleep()
        else:
            machine.lightsleep(ms)

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

    def deepsleep(self, ms):
        """Sleep until the timer or a press; never returns (wake is a reboot)."""
        level = esp32.WAKEUP_ALL_LOW if board.BUTTON_ACTIVE_LOW else esp32.WAKEUP_ANY_HIGH
        esp32.wake_on_gpio((self.button,), level)
        machine.deepsleep(ms)
