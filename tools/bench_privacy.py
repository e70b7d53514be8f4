"""What a scanner without the keys learns from a twin unit in a simulated day.

    python tools/bench_privacy.py [--hours 24] [--alerts 6] [--cover-per-day 48]
                                  [--speed 1000] [--quick] [--out FILE]

Two units, each on a radio of its own, run at once with the reference
config: one with cover traffic off, one with `cover_per_day` cover sequences.
Each is pressed `alerts` times at random moments and answered by a receiver
acknowledging as `amr listen --ack` does (decoys on); an observer
(amrkit.twin.observer) records every advertisement. From its records alone
(amrkit.twin.linkage): how addresses and payloads rotate, which bytes stay
constant, what each sequence looks like within the unit's awake periods,
and how well a decision stump tells alerts from routine sequences
(leave-one-out) against always guessing the majority, with the baseline's
sampling error (Wilson, one-sided 99.9 %). Which sequences were alerts comes
from the units' boot logs.

The twin fast-forwards deep sleep: the gaps the observer times between
windows are the twin's wake (a process start), not the unit's back-off; the
figures give both, the unit's from its own clock.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from amrkit.twin.linkage import (
    BURST_MIN_S,
    Analysis,
    analyse,
    expected_distinct,
    is_unit_frame,
    join_s,
    timing,
    windows,
)
from amrkit.twin.observer import Day, Watched, watch_day
from amrkit.twin.sim import SPEED

QUICK_HOURS = 6.0
QUICK_ALERTS = 2


def _gaps(watched: Watched, analysis: Analysis) -> dict[str, float | None]:
    """Median quiet time between one window of a sequence and the next: as
    the observer times it (wall clock) and on the unit's own clock."""
    sent = {s.data: s for s in watched.sent}
    wall, unit = [], []
    for seq in analysis.sequences:
        for a, b in itertools.pairwise(seq.windows):
            wall.append(b.first - a.last)
            if a.data in sent and b.data in sent:
                unit.append((sent[b.data].t_ms - sent[a.data].until_ms) / 1000)
    return {
        "observer_s": round(statistics.median(wall), 3) if wall else None,
        "unit_clock_s": round(statistics.median(unit), 3) if unit else None,
    }


def _day_figures(day: Day, watched: Watched) -> dict[str, Any]:
    alerts = {s.data for s in watched.sent if s.alert is not None}
    a = analyse(watched.heard, alerts, join_s(day.speed))
    header = len(a.constant_positions)
    c = a.classification
    frames = len(windows(watched.heard, is_unit_frame))
    covers = sum(
        not y and s.windows[0].length >= BURST_MIN_S
        for s, y in zip(a.sequences, a.labels, strict=True)
    )
    return {
        "hours": day.hours,
        "cover_per_day": day.cover_per_day,
        "wall_s": round(watched.wall_s, 1),
        "alarms": {"pressed": day.alerts, "raised": watched.raised, "acked": watched.acknowledged},
        "cover_sequences_heard": covers,
        "cover_sequences_expected": round(day.cover_per_day * day.hours / 24, 1),
        "unit": vars(a.unit),
        "answers": vars(a.answers),
        "constant_positions": a.constant_positions,
        "fewest_values_elsewhere": min(a.distinct[header:], default=None),
        "values_expected_if_uniform": round(expected_distinct(frames), 1),
        "classifier": {
            "sequences": c.sequences,
            "alerts": c.alerts,
            "accuracy": round(c.accuracy, 3),
            "baseline": round(c.baseline, 3),
            "bound": round(c.bound, 3),
            "beats_chance": c.beats_chance,
            "feature": c.stump.feature,
        },
        "timing": timing(a),
        "gap_within_sequence": _gaps(watched, a),
    }


def figures(
    quick: bool,
    hours: float | None = None,
    alerts: int | None = None,
    cover_per_day: int = 48,
    speed: float = SPEED,
) -> dict[str, Any]:
    """A day with cover traffic off and one with it on, watched at once."""
    hours = hours or (QUICK_HOURS if quick else 24.0)
    alerts = alerts or (QUICK_ALERTS if quick else 6)
    days = {
        "cover_off": Day(hours, alerts, 0, speed, seed=1),
        "cover_on": Day(hours, alerts, cover_per_day, speed, seed=2),
    }
    with ThreadPoolExecutor(len(days)) as pool:
        futures = {name: pool.submit(watch_day, day) for name, day in days.items()}
        return {name: _day_figures(days[name], f.result()) for name, f in futures.items()}


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The bench table's lines for these figures."""
    out = []
    for name, r in result.items():
        label = name.replace("_", " ")
        u, c = r["unit"], r["classifier"]
        out.append(
            (
                f"privacy, {label}: unit frames a scanner heard ({r['hours']:g} h)",
                f"{u['payloads']} payloads from {u['addresses']} addresses, "
                f"{u['payloads_with_several_addresses']} shared, "
                f"{u['payload_returns'] + u['address_returns']} back again; "
                f"constant bytes {r['constant_positions']}",
            )
        )
        out.append(
            (
                f"privacy, {label}: alert vs routine, stump leave-one-out",
                f"{c['accuracy']:.2f} vs baseline {c['baseline']:.2f} "
                f"(bound {c['bound']:.2f}) over {c['sequences']} sequences, "
                f"{c['alerts']} alerts: {'beats' if c['beats_chance'] else 'within'} chance",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, help="of simulated day (24; 6 with --quick)")
    parser.add_argument("--alerts", type=int, help="alarms pressed a day (6; 2 with --quick)")
    parser.add_argument("--cover-per-day", type=int, default=48)
    parser.add_argument("--speed", type=float, default=SPEED, help="deep sleep fast-forward")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    result = figures(args.quick, args.hours, args.alerts, args.cover_per_day, args.speed)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    for name, value in rows(result):
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
