"""Power-cut campaign on twin units (amrkit.twin.power_cuts), for `make bench`.

    python tools/bench_faults.py [--cuts 10000] [--workers 2]

Splits the cuts over independent units (one seed each) run in parallel and
adds up their reports. Exit 1 if any cut reused a counter, lost a persisted
alert or left the flash unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from amrkit.twin.power_cuts import run_campaign

UNITS = 20  # units in a full campaign: a unit's counters and alert ids stay small
CUTS_PER_UNIT = 200  # at least, in a smaller campaign


def _one(args: tuple[int, int, str]) -> dict[str, Any]:
    cuts, seed, scratch = args
    report = run_campaign(Path(scratch) / f"unit-{seed}", cuts, seed=seed)
    return {**report.figures(), "lost_ids": sorted(report.lost), "fault_lines": report.faults[:5]}


def run(cuts: int = 10_000, workers: int = 2) -> dict[str, Any]:
    start = time.perf_counter()
    units = max(1, min(UNITS, cuts // CUTS_PER_UNIT))
    per_unit = -(-cuts // units)
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(workers) as pool:
        reports = list(pool.map(_one, [(per_unit, seed, scratch) for seed in range(1, units + 1)]))
    total: dict[str, Any] = {"units": units, "cuts_by_kind": {}}
    for report in reports:
        for key, value in report.items():
            if key == "cuts_by_kind":
                for kind, n in value.items():
                    total["cuts_by_kind"][kind] = total["cuts_by_kind"].get(kind, 0) + n
            elif isinstance(value, int):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, []).extend(value)
    total["wall_s"] = round(time.perf_counter() - start, 1)
    total["ok"] = not (total["alerts_lost"] or total["reused_counters"] or total["faults"])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    figures = run(args.cuts, args.workers)
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
