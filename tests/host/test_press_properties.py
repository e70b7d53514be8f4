"""Property tests of the press recogniser under CPython (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from amrkit.paths import firmware_module
from amrkit.twin.gestures import Rng, replay, trace

press = firmware_module("press")
DEFAULTS = firmware_module("config").DEFAULTS
ALARMS = {press.ALARM_HOLD, press.ALARM_MULTI}
WINDOW = DEFAULTS["multi_window_ms"]


def run(samples: list[tuple[int, bool]]) -> list[int]:
    rec = press.Recogniser(DEFAULTS)
    return [e for _, e in replay(rec, samples, (samples[-1][0] if samples else 0) + 20_000)]


@st.composite
def sparse_presses(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Presses shorter than a hold, never three starts within the window."""
    n = draw(st.integers(1, 8))
    out: list[tuple[int, int]] = []
    t = 0
    for i in range(n):
        duration = draw(st.integers(60, DEFAULTS["hold_ms"] - 200))
        out.append((t, duration))
        # Every third start must be more than the window after the one two back.
        min_gap = duration + 150
        if i >= 1:
            min_gap = max(min_gap, out[i - 1][0] + WINDOW + 150 - t)
        t += draw(st.integers(min_gap, min_gap + 3000))
    return out


@settings(max_examples=300, deadline=None)
@given(sparse_presses(), st.integers(0, 2**31))
def test_no_alarm_without_a_hold_or_three_presses_in_window(
    presses: list[tuple[int, int]], seed: int
) -> None:
    assert not ALARMS & set(run(trace(Rng(seed), presses)))


@settings(max_examples=200, deadline=None)
@given(st.integers(DEFAULTS["hold_ms"] + 100, 10_000), st.integers(0, 2**31))
def test_every_hold_raises_exactly_one_alarm(duration: int, seed: int) -> None:
    assert run(trace(Rng(seed), [(0, duration)])) == [press.ALARM_HOLD]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=200))
def test_arbitrary_contact_noise_never_wedges_the_recogniser(gaps: list[int]) -> None:
    samples = []
    t = 0
    for i, gap in enumerate(gaps):
        t += gap
        samples.append((t, i % 2 == 0))
    # replay() raises if a deadline ever stops advancing.
    events = run(samples)
    assert set(events) <= {press.ALARM_HOLD, press.ALARM_MULTI, press.SERVICE, press.REJECTED}
