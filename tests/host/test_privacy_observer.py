"""A scanner that knows no keys watches twin units for a shortened day
(amrkit.twin.observer) while a receiver acknowledges with decoys on; from
its records only (amrkit.twin.linkage), nothing links two frames, and a
classifier tells alerts from routine sequences with cover traffic off but
does no better than chance with it on. Which sequences were alerts comes
from the units' own boot logs.

Sizes: the units burst for 2 s instead of 5.6 s (still longer than any 1 s
window), so more sequences fit in the wall time the twin's awake periods
take. Cover off: one unit, 6 alarms, a heartbeat an hour. Cover on: three
units on radios of their own, pooled, each with 2 alarms among 48 cover
sequences a day, watched until 10 bursts were heard (whatever rate of cover
sequences the firmware actually keeps).
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from amrkit.twin.linkage import (
    UNIT_AD_HEADER,
    Analysis,
    analyse,
    bursts,
    classify,
    is_unit_frame,
    join_s,
    timing,
    windows,
)
from amrkit.twin.observer import Day, Heard, Watched, watch_day

BURST = {"burst_ms": 2000}
COVER_OFF = Day(hours=14, alerts=6, speed=2000, config={**BURST, "heartbeat_s": 3600}, seed=1)
ON_AIR_MS = 200  # two advertising intervals (docs/protocol.md 4): reported at least once
COVER_ON_UNITS = 3
COVER_ON_BURSTS = 10  # per unit: its 2 alarms' and at least 8 cover sequences'


def cover_on(n: int) -> Day:
    return Day(hours=3, alerts=2, cover_per_day=48, speed=4000, config=BURST, seed=10 + n)


def enough(heard: list[Heard]) -> bool:
    return bursts(heard) >= COVER_ON_BURSTS


@dataclass
class Run:
    watched: Watched
    analysis: Analysis


def _run(day: Day, directory: Path, until: bool) -> Run:
    watched = watch_day(day, directory=directory, enough=enough if until else None)
    alerts = {s.data for s in watched.sent if s.alert is not None}
    return Run(watched, analyse(watched.heard, alerts, join_s(day.speed)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Run]]:
    tmp = tmp_path_factory.mktemp("observer")
    jobs = [("off", COVER_OFF, False)] + [("on", cover_on(n), True) for n in range(COVER_ON_UNITS)]
    # Each unit on a radio of its own, at once: the units mostly wait in real time.
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [
            (name, pool.submit(_run, day, tmp / f"{name}-{i}", until))
            for i, (name, day, until) in enumerate(jobs)
        ]
        out: dict[str, list[Run]] = {"off": [], "on": []}
        for name, future in futures:
            out[name].append(future.result())
    return out


def _all(runs: dict[str, list[Run]]) -> list[Run]:
    return runs["off"] + runs["on"]


def test_the_observer_hears_every_frame_the_unit_sent_and_nothing_else(
    runs: dict[str, list[Run]],
) -> None:
    for run in _all(runs):
        w = run.watched
        heard = {h.data for h in w.heard if is_unit_frame(h.data)}
        assert heard <= {s.data for s in w.sent}
        assert all(is_unit_frame(s.data) for s in w.sent)  # the observer's filter misses none
        # Up to the last frame it heard (the radio's loop may trail the
        # firmware when the day ends), it heard nearly all, but a payload
        # replaced within its first advertising events (a burst cuts what
        # was on the air short). The live radio runs in real time: on a
        # loaded host its loop can fall behind and lose a window now and
        # then, which leaves the observer less to link, never more.
        last = max(s.t_ms for s in w.sent if s.data in heard)
        due = [s for s in w.sent if s.t_ms < last and s.until_ms - s.t_ms >= ON_AIR_MS]
        missed = [(s.t_ms, s.until_ms) for s in due if s.data not in heard]
        assert len(missed) <= len(due) // 20, missed


def test_address_and_payload_rotate_together(runs: dict[str, list[Run]]) -> None:
    for run in _all(runs):
        unit = run.analysis.unit
        frames = len(windows(run.watched.heard, is_unit_frame))
        assert unit.payloads == unit.addresses == frames > 10
        assert unit.payloads_with_several_addresses == 0
        assert unit.addresses_with_several_payloads == 0
        assert unit.payload_returns == unit.address_returns == 0
        assert set(unit.address_kinds) == {"non-resolvable private"}
        # The receiver's tags and decoys: a fresh address for every payload
        # put on the air, never used again once another was on the air.
        answers = run.analysis.answers
        assert answers.payloads > 0
        assert answers.addresses_with_several_payloads == 0
        assert answers.address_returns == 0
        assert set(answers.address_kinds) == {"non-resolvable private"}


def _binomial_tail(n: int, k: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_no_byte_after_the_header_links_two_frames(runs: dict[str, list[Run]]) -> None:
    # Unit by unit: the twin's units in separate sims share a name, so keys.
    for run in _all(runs):
        payloads = [w.data for w in windows(run.watched.heard, is_unit_frame)]
        positions = len(payloads[0])
        assert {len(p) for p in payloads} == {positions}
        constant = [i for i in range(positions) if len({p[i] for p in payloads}) == 1]
        assert constant == list(range(len(UNIT_AD_HEADER)))
        # Uniform bytes: the most frequent value of a position turns up in
        # `share` frames or more with a chance under 1e-6 over every position.
        n, others = len(payloads), positions - len(UNIT_AD_HEADER)
        share = next(
            k for k in range(1, n + 1) if others * 256 * _binomial_tail(n, k, 1 / 256) < 1e-6
        )
        for i in range(len(UNIT_AD_HEADER), positions):
            most = max(Counter(p[i] for p in payloads).values())
            assert most < share, (i, most, n)


def test_with_cover_off_a_classifier_tells_the_alerts(runs: dict[str, list[Run]]) -> None:
    (run,) = runs["off"]
    w, a = run.watched, run.analysis
    assert w.raised == w.acknowledged == COVER_OFF.alerts
    c = a.classification
    assert c.alerts == COVER_OFF.alerts and c.sequences >= 16
    assert c.accuracy > c.bound > c.baseline
    # Why: the alert's burst is its longest window, and nothing routine has one.
    t = timing(a)
    assert t["alert"]["first_window_s"]["min"] > t["routine"]["first_window_s"]["max"]  # type: ignore[index]


def test_with_cover_on_a_classifier_does_no_better_than_chance(
    runs: dict[str, list[Run]],
) -> None:
    on = runs["on"]
    for run in on:
        assert run.watched.raised == run.watched.acknowledged == 2
    c = classify(
        [s for run in on for s in run.analysis.sequences],
        [y for run in on for y in run.analysis.labels],
    )
    assert c.alerts == 2 * COVER_ON_UNITS
    assert c.sequences >= COVER_ON_UNITS * COVER_ON_BURSTS
    assert c.accuracy <= c.bound


def test_every_sequence_is_answered_alerts_and_routine_alike(runs: dict[str, list[Run]]) -> None:
    for run in _all(runs):
        assert all(s.answer_s is not None for s in run.analysis.sequences)
