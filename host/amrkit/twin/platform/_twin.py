# Shared state of one virtual unit for the platform emulations (runs under
# the MicroPython unix port). The supervisor writes unit.json in the unit's
# directory before each boot; the emulations report back through files there.
#
# Time is virtual: it advances only when the firmware sleeps or waits, so a
# run is deterministic and deep sleep costs nothing. The clock is the
# supervisor's (ms since the unit was first powered); the RTC counter the
# firmware reads is that clock since the last power-on (rtc_ms); ticks count
# from the wake.
# Under `amr sim` (unit.json "realtime") awake time follows the wall clock
# from the process start: the boot takes its time, waits are real, and
# presses the supervisor adds to unit.json meanwhile reach the pin.
import json
import os
import sys

import utime  # the interpreter's own clock (`time` here is the emulation)
from _contract import (
    AIR_FILE,
    BOOT_MS,
    BROWNOUT_MV,
    CLOCK_MS,
    COMMITS,
    CPU_ACTIVE,
    CUT_AT_MS,
    DIR_ENV,
    EVENTS_FILE,
    EXIT,
    EXIT_BROWNOUT,
    EXIT_FILE,
    EXIT_POWER_CUT,
    EXIT_WATCHDOG,
    HANG_AT_MS,
    RADIO_MV,
    REALTIME,
    REPL_ENV,
    RTC_ANCHOR,
    RTC_EPOCH_MS,
    SAMPLES,
    SPAWN_WALL_MS,
    UNIT_FILE,
)

DIR = os.getenv(DIR_ENV)
# In the serial REPL's process (a wired command), not a boot: nothing it does
# goes into the boot's event log or exit.json, and its radio stays local.
IN_REPL = bool(os.getenv(REPL_ENV))
if not DIR:
    raise ImportError(DIR_ENV + " is not set: run the firmware through amrkit.twin")

with open(DIR + "/" + UNIT_FILE) as _f:
    UNIT = json.load(_f)

_wake = UNIT[CLOCK_MS]
_now = _wake + UNIT[BOOT_MS]
_samples = UNIT[SAMPLES]  # [[t_ms, pressed], ...] on the RTC clock, in time order
# unit.json as last read: at boot, then after each real-time wait (the
# supervisor adds presses and hangs to it while the unit is awake).
_seen = UNIT
commits = UNIT[COMMITS]  # NVS commits so far in the unit's life
_REALTIME = bool(UNIT.get(REALTIME))
# Samples already felt by the pin: all before _felt_t, and the first _felt_n
# of those at exactly _felt_t (several may share a millisecond; each counts).
_felt_t = _now
_felt_n = len([1 for _t, _p in _samples if _t == _now])
# The watchdog, once the app arms it: (timeout ms, last feed) on this clock.
_wdt = None
# What the chip draws from the cell now (a board profile's power state): the
# radio emulation sets it, the ADC reads the cell under that load.
drawing = CPU_ACTIVE
# The pins and level that wake the chip from deep sleep (esp32.wake_on_gpio).
wake_gpio = None


def now():
    """The RTC clock (ms). The serial REPL's process outlives the boots
    whose unit.json it read: it reads the clock the supervisor runs now."""
    if IN_REPL:
        anchor = latest().get(RTC_ANCHOR)
        if anchor:
            wall, rtc, rate = anchor
            return rtc + int((utime.time_ns() // 1000000 - wall) * rate)
    return _now


def rtc_ms():
    """The chip's RTC counter: the clock since the cell last went in."""
    return now() - (latest() if IN_REPL else UNIT)[RTC_EPOCH_MS]


def since_wake():
    return _now - _wake


_listeners = []  # called with `pressed` at each contact change, by Pin.irq
_tickers = []  # called with (start, end) of every stretch of awake time


_pump = None  # real-time waits deliver the radio's events while the unit is on one


def realtime(pump):
    """From now on real-time waits go through pump(ms), which delivers the
    radio's events while it waits."""
    global _pump
    _pump = pump


def wall_ms():
    return utime.ticks_ms()


def listen(callback):
    _listeners.append(callback)


def tick(callback):
    _tickers.append(callback)


def air():
    """What others advertise near the unit: [{"from", "to", "ad"}], ms, hex."""
    try:
        with open(DIR + "/" + AIR_FILE) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def _wall_now():
    """The RTC clock as the wall clock has it, in real-time mode."""
    return _wake + utime.time_ns() // 1000000 - UNIT[SPAWN_WALL_MS]


def _wait_until(t):
    """Real time passes until the clock reads t (radio events are delivered
    meanwhile); then pick up presses added since."""
    global _samples, _seen
    remaining = t - _wall_now()
    if remaining > 0:
        if _pump is not None:
            _pump(remaining)
        else:
            utime.sleep_ms(remaining)
    _seen = latest()
    _samples = _seen.get(SAMPLES, _samples)


def advance(ms):
    """Let ms pass awake: contact changes on the way reach the pin interrupts."""
    global _now
    begin = _now
    end = _now + max(0, ms)
    _watch(end)
    if _REALTIME:
        _wait_until(end)
        end = max(end, _wall_now())
    _deliver(end)
    _now = end
    for callback in _tickers:
        callback(begin, end)


def _deliver(end):
    """Contact changes up to `end` reach the pin interrupts, in order."""
    global _now, _felt_t, _felt_n
    prev = None
    k = 0  # index among the samples of one millisecond
    for ts, pressed in _samples:
        if ts > end:
            break
        k = k + 1 if ts == prev else 0
        prev = ts
        if ts < _felt_t or (ts == _felt_t and k < _felt_n):
            continue
        _now = ts
        _felt_t, _felt_n = ts, k + 1
        for callback in _listeners:
            callback(pressed)


def arm_watchdog(timeout_ms):
    global _wdt
    _wdt = (timeout_ms, _now)


def feed_watchdog():
    global _wdt
    if _wdt is not None:
        _wdt = (_wdt[0], _now)


def _watch(end):
    """The watchdog, armed and not fed by `end`, resets the chip. An injected
    hang (unit.json "hang_at_ms") stops the app from that moment: the
    watchdog resets it when its timeout runs out; without one the chip
    stays hung, as a real one would. Checked against the virtual time asked
    for, so a slow host never looks like a hang."""
    if IN_REPL:
        return  # the watchdog, injected hangs and cuts belong to the unit's boots
    cut = UNIT.get(CUT_AT_MS)
    if cut is not None and end >= cut:
        advance_to(cut)
        record("power_cut", at=cut)
        stop(EXIT_POWER_CUT)
    at = _seen.get(HANG_AT_MS)
    if at is not None and end >= at:
        advance_to(at)
        record("hang")
        if _wdt is None:
            while True:
                utime.sleep_ms(1000)
        end = max(at, _wdt[1] + _wdt[0]) + 1
    if _wdt is None or end <= _wdt[1] + _wdt[0]:
        return
    advance_to(_wdt[1] + _wdt[0])
    record("watchdog_reset")
    stop(EXIT_WATCHDOG)


def advance_to(t):
    global _now
    if t > _now:
        if _REALTIME:
            _wait_until(t)
        _now = t


def pressed_at(t):
    level = False
    for ts, pressed in _samples:
        if ts > t:
            break
        level = pressed
    return level


def next_change(t, pressed):
    """First time after t at which the contact becomes `pressed`, or None."""
    for ts, level in _samples:
        if ts > t and level == pressed:
            return ts
    return None


def latest():
    """unit.json as the supervisor has it now: it changes the cell and adds
    presses while a process runs (a real-time boot, the REPL)."""
    try:
        with open(DIR + "/" + UNIT_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):  # being rewritten this instant
        return UNIT


def radio_on():
    """The radio starts drawing its current: a weak cell browns the chip out."""
    now = latest()
    sag = now.get(RADIO_MV)
    if sag is not None and sag < now.get(BROWNOUT_MV, 0):
        record("brownout", mv=sag)
        stop(EXIT_BROWNOUT)


def record(kind, **fields):
    if IN_REPL:
        return
    fields["kind"] = kind
    fields["t"] = _now
    with open(DIR + "/" + EVENTS_FILE, "a") as f:
        f.write(json.dumps(fields) + "\n")


def write_atomic(name, text):
    tmp = DIR + "/" + name + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, DIR + "/" + name)


def stop(code, fields=None):
    """End this run of the firmware, as deep sleep or a power cut does;
    fields: more of exit.json."""
    if IN_REPL:
        sys.exit(code)  # a reset: the serial emulation starts the REPL again
    fields = fields or {}
    fields[CLOCK_MS] = _now
    fields[EXIT] = code
    fields[COMMITS] = commits
    write_atomic(EXIT_FILE, json.dumps(fields))
    sys.exit(code)


if UNIT.get(CUT_AT_MS) is not None and UNIT[CUT_AT_MS] <= _now:
    record("power_cut", at=UNIT[CUT_AT_MS])  # during the boot, before the app
    stop(EXIT_POWER_CUT)
if _REALTIME:
    _wait_until(_now)  # the boot itself takes its time
