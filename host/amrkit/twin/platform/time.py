# Emulation of MicroPython's `time` on the virtual clock (see _twin.py).
import _twin
from utime import gmtime, localtime, mktime  # noqa: F401  (wall-clock helpers as on the chip)


def ticks_ms():
    return _twin.since_wake()


def ticks_us():
    return _twin.since_wake() * 1000


def ticks_cpu():
    return ticks_us()


def ticks_diff(end, start):
    return end - start


def ticks_add(ticks, delta):
    return ticks + delta


def sleep_ms(ms):
    _twin.advance(ms)


def sleep_us(us):
    _twin.advance(us // 1000)


def sleep(seconds):
    _twin.advance(int(seconds * 1000))


def time():
    return _twin.rtc_ms() // 1000


def time_ns():
    return _twin.rtc_ms() * 1000000
