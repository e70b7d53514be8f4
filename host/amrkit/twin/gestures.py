# Synthetic button traces with realistic contact bounce, for the firmware
# tests (run under MicroPython), the property tests and the benchmarks (run
# under CPython), and the twin's press injection. Written to run on both, with
# its own PRNG so a seed gives the same trace everywhere.
#
# A trace is a list of (t_ms, pressed) raw contact samples in time order; the
# contact is open before the first one.
#
# Bounce model (tactile dome switches, e.g. the 3-6 mm SMD domes used in
# coin-sized enclosures): at each make and break 0-6 extra glitches, mostly
# 1-3 ms, spaced 1-5 ms, so a bounce burst spans up to ~50 ms; one break burst
# in twenty adds a long glitch of 15-45 ms. One press in ten of 200 ms or more chatters: 1-3
# opens of up to 10 ms while held (finger pressure varying).

try:
    from typing import Any

    Trace = list[tuple[int, bool]]
    Presses = list[tuple[int, int]]
    Events = list[tuple[int, int]]
except ImportError:  # MicroPython: annotations are not evaluated there
    pass


class Rng:
    """xorshift32: the same sequence under CPython and MicroPython."""

    def __init__(self, seed: int) -> None:
        self._s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def below(self, n: int) -> int:
        s = self._s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self._s = s
        return s % n

    def between(self, lo: int, hi: int) -> int:
        return lo + self.below(hi - lo + 1)

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent


def _burst(rng: Rng, t: int, level: bool, out: Trace, until: int | None = None) -> int:
    """Glitches right after the contact settles at `level` at time t.

    With `until` (a make), the burst ends before the contact opens again and
    has no long glitch: a long open would be a release.
    """
    for _ in range(rng.below(7)):
        gap = rng.between(1, 5)
        width = rng.between(1, 3)
        if until is not None and t + gap + width >= until:
            break
        t += gap
        out.append((t, not level))
        out.append((t + width, level))
        t += width
    if until is None and rng.chance(5):
        t += rng.between(1, 5)
        width = rng.between(15, 45)
        out.append((t, not level))
        out.append((t + width, level))
        t += width
    return t


def trace(rng: Rng, presses: Presses, bounce: bool = True) -> Trace:
    """Raw samples for presses given as (start_ms, duration_ms), in order."""
    out: Trace = []
    for start, duration in presses:
        out.append((start, True))
        if bounce:
            _burst(rng, start, True, out, until=start + duration // 3)
            if duration >= 200 and rng.chance(10):
                for _ in range(rng.between(1, 3)):
                    t = start + rng.between(duration // 2, duration - 20)
                    out.append((t, False))
                    out.append((t + rng.between(1, 10), True))
        end = start + duration
        out.append((end, False))
        if bounce:
            _burst(rng, end, False, out)
    out.sort(key=lambda e: e[0])
    return _clean(out)


def _clean(samples: Trace) -> Trace:
    """Drop samples that do not change the level (glitches may overlap)."""
    out: Trace = []
    level = False
    for t, pressed in samples:
        if pressed != level:
            out.append((t, pressed))
            level = pressed
    return out


def taps(
    rng: Rng,
    count: int,
    tap_ms: tuple[int, int] = (100, 250),
    gap_ms: tuple[int, int] = (260, 500),
    start: int = 0,
) -> Presses:
    """Presses for `count` deliberate taps at a comfortable human tempo.

    The default, 1.3-2.8 taps a second, is how people tap when told "press
    three times"; pass shorter gaps for frantic tapping.
    """
    presses: Presses = []
    t = start
    for _ in range(count):
        d = rng.between(tap_ms[0], tap_ms[1])
        presses.append((t, d))
        t += d + rng.between(gap_ms[0], gap_ms[1])
    return presses


def service_presses(rng: Rng, pairs: int = 3, start: int = 0, pause: int = 3000) -> Presses:
    """The maintenance gesture: `pairs` double taps, a pair starting every
    `pause` ms (what a technician does when told "tap twice, wait, ...")."""
    presses: Presses = []
    t = start
    for _ in range(pairs):
        presses += taps(rng, 2, gap_ms=(150, 250), start=t)
        t = presses[-1][0] + pause
    return presses


def disturbance(rng: Rng) -> Trace:
    """One trace a wearer produces without meaning to raise an alarm."""
    kind = rng.below(6)
    if kind == 0:  # a single short press: a bump, or curiosity
        return trace(rng, [(0, rng.between(20, 399))])
    if kind == 1:  # two presses close together
        return trace(rng, taps(rng, 2))
    if kind == 2:  # pocket chatter: glitches too short to be a press
        return _clean(_chatter(rng, 5, 60, 80, 20))
    if kind == 3:  # leaning on it, shorter than a hold
        return trace(rng, [(0, rng.between(400, 1200))])
    if kind == 4:  # two presses, then a third too late for the window
        first = taps(rng, 2)
        late = first[0][0] + rng.between(2300, 4000)
        return trace(rng, first + [(late, rng.between(90, 220))])
    # chatter followed by a single press
    chatter = _chatter(rng, 3, 20, 60, 15)
    t = chatter[-1][0]
    press = trace(rng, [(t + rng.between(100, 400), rng.between(60, 399))])
    return _clean(chatter + press)


def _chatter(rng: Rng, least: int, most: int, gap_ms: int, width_ms: int) -> Trace:
    """Contact glitches of 1..width_ms, 5..gap_ms apart."""
    out: Trace = []
    t = 0
    for _ in range(rng.between(least, most)):
        t += rng.between(5, gap_ms)
        w = rng.between(1, width_ms)
        out.append((t, True))
        out.append((t + w, False))
        t += w
    return out


def replay(
    rec: Any, samples: list[tuple[float, bool]], end_ms: float, boot_ms: int | None = None
) -> Events:
    """Drive a Recogniser as the firmware loop does; returns [(t, event)].

    With boot_ms, the first sample woke the chip: samples before boot_ms are
    not seen, only the level at boot_ms, and times are counted from the wake.
    Times fall on the chip's 1 ms tick, as the pin interrupt stamps them.
    """
    # int() of a whole number is the number itself: no allocation per sample.
    events: Events = []
    i = 0
    if boot_ms is not None:
        t0 = int(samples[0][0])
        level = False
        while i < len(samples) and int(samples[i][0]) - t0 <= boot_ms:
            level = samples[i][1]
            i += 1
        _note(events, boot_ms, rec.woke(boot_ms, level))
    else:
        t0 = 0
        rec.reset(0, False)
    for j in range(i, len(samples)):
        t, pressed = samples[j]
        t = int(t) - t0
        _poll_until(rec, t, events)
        _note(events, t, rec.edge(t, pressed))
    _poll_until(rec, int(end_ms), events)
    return events


def _poll_until(rec: Any, t: int, events: Events) -> None:
    while True:
        due = rec.deadline()
        if due is None or due > t:
            return
        _note(events, due, rec.poll(due))
        if rec.deadline() == due:
            raise RuntimeError("recogniser deadline %d did not advance" % due)


def _note(events: Events, t: int, event: int | None) -> None:
    if event is not None:
        events.append((t, event))
