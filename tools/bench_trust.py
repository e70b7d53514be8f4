"""Trust figures for `make bench`: faults, press storms, load and the
acknowledgement's time on the air (docs/reliability.md gives each with its
command).

    python tools/bench_trust.py [--quick]

  - power cuts (tools/bench_faults.py, amrkit.twin.power_cuts): 10,000 cuts
    over 20 twin units; counters reused, alerts lost, unreadable flash (all
    must be 0);
  - press storms (amrkit.twin.storms): 50 presses in about 10 s on a whole
    twin unit, 20 storms; alarms expected by the gesture rules against
    alarm gestures, alerts reserved and alerts heard (must be equal);
  - load (amrkit.twin.air_load): 200 twin units on the live radio, 20 pressed
    at once, heard by `amr listen` as a gateway with a webhook; alerts
    printed and forwarded, false alerts, the listener's CPU and latency;
  - acknowledgement (tools/bench_ack.py): time on the air per alert and
    retries until acknowledged, the earlier two-minute hold as baseline;
  - fuzzing (tools/bench_fuzz.py): 100,000 inputs a target (fewer for the
    slow ones, which it names); crashes, hangs, secrets said (all must be 0);
  - adversary (amrkit.twin.adversary): 15,000 frames of each of 7 attacks
    (105,000) mixed into genuine traffic; accepted (must be 0);
  - privacy (tools/bench_privacy.py): an independent scanner watching a unit
    for a simulated day, cover off and on; rotation, constant bytes, and a
    classifier of alert against routine sequences against chance (not with
    --quick: a day takes minutes of real time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ack
import bench_faults
import bench_fuzz
import bench_privacy

from amrkit.twin.adversary import run_adversary
from amrkit.twin.air_load import SHORT, Timing, run_load
from amrkit.twin.storms import run_storm


@dataclass(frozen=True)
class Counts:
    cuts: int
    storms: int
    units: int
    pressed: int
    timing: Timing
    ack_alerts: int
    fuzz_per_target: int
    per_attack: int


FULL = Counts(10_000, 20, 200, 20, Timing(), 4, 100_000, 15_000)
QUICK = Counts(20, 1, 6, 2, SHORT, 1, 40, 100)


def storms(count: int) -> dict[str, Any]:
    totals = {"storms": count, "presses": 0, "expected_alarms": 0, "alarm_gestures": 0}
    totals |= {"alerts_reserved": 0, "alerts_heard": 0, "storms_wrong": 0}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(1, count + 1):
            report = run_storm(Path(scratch) / f"storm-{seed}", seed)
            totals["presses"] += len(report.presses)
            totals["expected_alarms"] += report.expected
            totals["alarm_gestures"] += report.alarm_gestures
            totals["alerts_reserved"] += len(report.reserved)
            totals["alerts_heard"] += len(report.heard)
            right = report.alarm_gestures == report.expected == len(
                report.reserved
            ) and report.heard == set(report.reserved)
            totals["storms_wrong"] += not right
    return totals


def load(units: int, pressed: int, timing: Timing) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        return run_load(Path(scratch), units, pressed, timing=timing).figures()


def figures(quick: bool = False) -> dict[str, Any]:
    counts = QUICK if quick else FULL
    return {
        "power_cuts": bench_faults.run(counts.cuts),
        "storms": storms(counts.storms),
        "load": load(counts.units, counts.pressed, counts.timing),
        "ack": bench_ack.figures(counts.ack_alerts),
        "fuzz": bench_fuzz.run(counts.fuzz_per_target),
        "adversary": run_adversary(counts.per_attack).figures(),
        "privacy": None if quick else bench_privacy.figures(False),
    }


def failures(result: dict[str, Any]) -> list[str]:
    """What broke a must-hold figure, for the exit code."""
    out = []
    cuts = result["power_cuts"]
    if not cuts["ok"]:
        out.append(
            f"power cuts: {cuts['reused_counters']} counters reused, {cuts['alerts_lost']} alerts"
            f" lost, {cuts['faults']} faults in {cuts['cuts']} cuts (all must be 0)"
        )
    if result["storms"]["storms_wrong"]:
        out.append(
            f"press storms: {result['storms']['storms_wrong']} storms raised the wrong alerts"
        )
    load_ = result["load"]
    if load_["alerts_forwarded"] < load_["alerts_expected"] or load_["false_alerts"]:
        out.append(
            f"load: {load_['alerts_forwarded']} of {load_['alerts_expected']} alerts forwarded,"
            f" {load_['false_alerts']} false alerts"
        )
    fuzz = [
        target
        for target, r in result["fuzz"].items()
        if r["crashes"] or r["hangs"] or r["secret_seen"]
    ]
    if fuzz:
        out.append(f"fuzzing: crashes, hangs or a secret said in {', '.join(fuzz)}")
    adversary = result["adversary"]
    if adversary["accepted_total"] or adversary["keys_in_events"]:
        out.append(f"adversary: {adversary['accepted_total']} attack frames accepted")
    if adversary["genuine_accepted"] < adversary["genuine_frames"]:
        out.append("adversary: the attack cost genuine frames")
    return out


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    cuts, storm, load_, ack = result["power_cuts"], result["storms"], result["load"], result["ack"]
    adv = result["adversary"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(cuts["cuts_by_kind"].items()))
    lat = load_["latency_s"]
    return [
        (f"power cuts on twin units ({cuts['units']} units, {cuts['wall_s']} s)", ""),
        ("  cuts", f"{cuts['cuts']} ({kinds})"),
        (
            "  alerts persisted / heard / lost",
            f"{cuts['alerts_persisted']} / {cuts['alerts_heard']} / {cuts['alerts_lost']}",
        ),
        ("  counters reused / unreadable flash", f"{cuts['reused_counters']} / {cuts['faults']}"),
        (f"press storms ({storm['storms']} x 50 presses in ~10 s)", ""),
        (
            "  alarms by the rules / recognised / alerts heard",
            f"{storm['expected_alarms']} / {storm['alarm_gestures']} / {storm['alerts_heard']}",
        ),
        (f"load: {load_['units']} units, {load_['pressed_at_once']} pressed at once", ""),
        (
            "  alerts expected / printed / forwarded / false",
            f"{load_['alerts_expected']} / {load_['alerts_printed']} / "
            f"{load_['alerts_forwarded']} / {load_['false_alerts']}",
        ),
        ("  first frame to event p50 / p99", f"{lat['p50']} / {lat['p99']} s"),
        (
            "  listener CPU",
            f"{load_['receiver_cpu_s']} s in {load_['wall_s']} s ({load_['receiver_cpu_pct']} %)",
        ),
        ("acknowledgement on the air per alert", ""),
        (
            "  two-minute hold (baseline) / window",
            f"{ack['hold']['ack_on_air_s_mean']} / {ack['window']['ack_on_air_s_mean']} s"
            f" ({ack['on_air_ratio_window_to_hold']}x)",
        ),
        ("fuzzing: inputs, crashes / hangs / secrets said, inputs/s", ""),
        *(
            (
                f"  {target}",
                f"{r['inputs']}, {r['crashes']} / {r['hangs']} / {int(r['secret_seen'])},"
                f" {r['inputs_per_s']}/s",
            )
            for target, r in result["fuzz"].items()
        ),
        (f"adversary: {adv['attack_frames']} attack frames in genuine traffic", ""),
        *((f"  {attack}", f"{adv['accepted'][attack]} accepted") for attack in adv["accepted"]),
        (
            "  genuine frames accepted",
            f"{adv['genuine_accepted']} of {adv['genuine_frames']}",
        ),
        *(bench_privacy.rows(result["privacy"]) if result["privacy"] else []),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = figures(args.quick)
    print(json.dumps(result, indent=2))
    bad = failures(result)
    for line in bad:
        print("FAIL: " + line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
