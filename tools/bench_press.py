# Press recogniser benchmark, run under the MicroPython unix port by
# tools/bench.py (MICROPYPATH = firmware dir + host/amrkit/twin):
#
#     micropython tools/bench_press.py [COUNT] [ROUNDS] [BOOTS_MS]
#
# Prints one JSON line with: CPU time and heap allocated per press replaying
# pre-generated traces through amr.press.Recogniser, the same for a baseline
# (the same samples, a no-op call per sample), chatter immunity (alarms raised
# by COUNT non-alarm disturbance traces) and recognition rates of deliberate
# alarm gestures on an awake unit and on a unit they woke, for each
# wake-to-app time in BOOTS_MS (comma-separated). No thresholds here:
# tools/bench.py judges.
import json
import sys

from gestures import Rng, disturbance, replay, taps, trace
from mpy_timing import best_of

from amr.config import DEFAULTS
from amr.press import ALARM_HOLD, ALARM_MULTI, Recogniser

# Disjoint seed ranges per trace family, so the families are independent.
_SEED_TIMING = 0
_SEED_CHATTER = 100000
_SEED_TRIPLE = 200000
_SEED_HOLD = 300000
_SEED_FAST = 400000

# Past the last sample: long enough for any gesture window to close.
_TAIL_MS = DEFAULTS["service_pause_max_ms"] + DEFAULTS["multi_window_ms"]


def _end(samples):
    return samples[-1][0] - samples[0][0] + _TAIL_MS


def _alarms(events):
    n = 0
    for _, event in events:
        if event in (ALARM_HOLD, ALARM_MULTI):
            n += 1
    return n


def _noop(t, pressed):
    return None


def _baseline(traces):
    # What the recogniser replay costs at the least: walk every sample and
    # make one Python call per sample.
    for samples, _ in traces:
        for t, pressed in samples:
            _noop(t, pressed)


class _Counting(Recogniser):
    # rec.presses counts the presses of the current gesture window only, and
    # reset() (a new window, or the release after an alarm) zeroes it: add it
    # up before each reset. Used in an untimed pass, so the timed replay runs
    # the plain Recogniser.
    total = 0

    def reset(self, t, pressed):
        self.total += getattr(self, "presses", 0)
        super().reset(t, pressed)


def _count_presses(traces):
    rec = _Counting(DEFAULTS)
    for samples, end in traces:
        replay(rec, samples, end)
    return rec.total + rec.presses


def _recognise(rec, traces):
    for samples, end in traces:
        replay(rec, samples, end)


def _timing_traces(count):
    # A realistic mix: triple taps, holds and disturbances, in equal parts.
    out = []
    for seed in range(count):
        rng = Rng(_SEED_TIMING + seed)
        kind = seed % 3
        if kind == 0:
            samples = trace(rng, taps(rng, 3))
        elif kind == 1:
            samples = trace(rng, [(0, rng.between(1600, 4000))])
        else:
            samples = disturbance(rng)
        out.append((samples, _end(samples)))
    return out


def _rate(seed0, count, make, boot_ms):
    """Percentage of `count` traces recognised as an alarm."""
    rec = Recogniser(DEFAULTS)
    hits = 0
    for seed in range(count):
        rng = Rng(seed0 + seed)
        samples = make(rng)
        if _alarms(replay(rec, samples, _end(samples), boot_ms=boot_ms)):
            hits += 1
    return 100.0 * hits / count


def main(count, rounds, boots):
    global ROUNDS
    ROUNDS = rounds
    traces = _timing_traces(count)
    samples_total = 0
    for samples, _ in traces:
        samples_total += len(samples)

    presses = _count_presses(traces)
    rec = Recogniser(DEFAULTS)
    rec_us, rec_alloc = best_of(ROUNDS, _recognise, rec, traces)
    base_us, base_alloc = best_of(ROUNDS, _baseline, traces)

    # Chatter immunity: every alarm event from non-alarm traces, seen from an
    # awake unit (every edge observed) and from a unit the trace woke, for
    # each wake-to-app time.
    chatter = 0
    chatter_woken = {}
    for boot in boots:
        chatter_woken[str(boot)] = 0
    for seed in range(count):
        samples = disturbance(Rng(_SEED_CHATTER + seed))
        if not samples:
            continue
        chatter += _alarms(replay(rec, samples, _end(samples)))
        for boot in boots:
            chatter_woken[str(boot)] += _alarms(replay(rec, samples, _end(samples), boot_ms=boot))

    # Deliberate alarm gestures, recognised by a unit they woke (for each
    # wake-to-app time) and by a unit already awake (the baseline: every
    # edge seen, as with a light-sleep standby).
    gestures = (
        ("triple_tap", _SEED_TRIPLE, lambda rng: trace(rng, taps(rng, 3))),
        ("hold_1600_4000ms", _SEED_HOLD, lambda rng: trace(rng, [(0, rng.between(1600, 4000))])),
        (
            "fast_triple_tap",
            _SEED_FAST,
            lambda rng: trace(rng, taps(rng, 3, tap_ms=(80, 150), gap_ms=(120, 250))),
        ),
    )
    woken = {}
    for boot in [None] + boots:
        rates = {}
        for name, seed0, make in gestures:
            rates[name] = _rate(seed0, count, make, boot)
        woken["awake" if boot is None else str(boot)] = rates

    result = {
        "traces": count,
        "rounds": rounds,
        "samples": samples_total,
        "presses": presses,
        "recogniser_us": rec_us,
        "recogniser_alloc_bytes": rec_alloc,
        "baseline_us": base_us,
        "baseline_alloc_bytes": base_alloc,
        "chatter_traces": count,
        "chatter_alarms": chatter,
        "chatter_alarms_woken": chatter_woken,
        "recognised_pct": woken,
    }
    print(json.dumps(result))


ROUNDS = 1

if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        [int(ms) for ms in sys.argv[3].split(",")] if len(sys.argv) > 3 else [],
    )
