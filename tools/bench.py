"""Benchmark the press recogniser and the firmware bundle for one board.

    python tools/bench.py --board esp32c3-coin [--out build/bench.json] [--quick]

Figures (printed as a table and written as JSON):
  - CPU time and heap allocated per press by amr.press.Recogniser on the
    MicroPython unix port (tools/bench_press.py), with a baseline measured in
    the same run (the same samples, one no-op call per sample) and the ratio,
    which is what stays comparable across machines;
  - total bytes of the board's .mpy bundle (tools/build_firmware.py);
  - chatter immunity: alarms raised by non-alarm disturbance traces (must be 0);
  - for context, the share of deliberate alarm gestures recognised on a woken
    unit: triple taps, holds of 1.6-4 s, and fast triple taps (below 100%:
    presses during the boot are not seen, a known limit).

Exit codes: 0 done, 1 chatter raised an alarm, 2 the benchmark failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from amrkit.paths import firmware_dir, micropython_binary, platform_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_firmware

TOOLS = Path(__file__).resolve().parent
PRESS_SCRIPT = TOOLS / "bench_press.py"
FULL_TRACES = 1000
QUICK_TRACES = 50
FULL_ROUNDS = 5
QUICK_ROUNDS = 1
EXIT_CHATTER = 1
EXIT_FAILED = 2


def run_press_bench(traces: int, rounds: int) -> dict[str, Any]:
    """Run tools/bench_press.py under the unix port; its JSON result line."""
    path = os.pathsep.join([str(firmware_dir()), str(platform_dir().parent), ".frozen"])
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=64M", str(PRESS_SCRIPT), str(traces), str(rounds)],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=path),
        timeout=600,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench_press.py failed ({proc.returncode}):\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def bundle_bytes(board: str) -> tuple[int, int]:
    """(files, bytes) of the board's app bundle, built into a temporary dir."""
    with tempfile.TemporaryDirectory() as tmp:
        app = build_firmware.build(board, tmp)
        return build_firmware.bundle_size(app)


def figures(board: str, traces: int, rounds: int) -> dict[str, Any]:
    raw = run_press_bench(traces, rounds)
    presses: int = raw["presses"]
    files, size = bundle_bytes(board)
    rec_us = raw["recogniser_us"] / presses
    base_us = raw["baseline_us"] / presses
    return {
        "board": board,
        "micropython": micropython_binary(),
        "press": {
            "traces": raw["traces"],
            "rounds": raw["rounds"],
            "samples": raw["samples"],
            "presses": presses,
            "recogniser_us_per_press": round(rec_us, 2),
            "recogniser_alloc_bytes_per_press": round(raw["recogniser_alloc_bytes"] / presses, 1),
            "baseline_us_per_press": round(base_us, 2),
            "baseline_alloc_bytes_per_press": round(raw["baseline_alloc_bytes"] / presses, 1),
            "recogniser_to_baseline_ratio": round(rec_us / base_us, 1) if base_us else None,
        },
        "bundle": {"files": files, "bytes": size},
        "chatter": {
            "traces": raw["chatter_traces"],
            "alarms": raw["chatter_alarms"],
            "alarms_per_1000": round(1000 * raw["chatter_alarms"] / raw["chatter_traces"], 2),
            "alarms_woken": raw["chatter_alarms_woken"],
        },
        "recognition_woken_pct": {
            "wake_to_app_ms": raw["wake_to_app_ms"],
            "triple_tap": raw["triple_tap_woken_pct"],
            "hold_1600_4000ms": raw["hold_woken_pct"],
            "fast_triple_tap": raw["fast_triple_tap_woken_pct"],
        },
    }


def table(result: dict[str, Any]) -> str:
    press, chatter, bundle = result["press"], result["chatter"], result["bundle"]
    rate = result["recognition_woken_pct"]
    rows = [
        ("press recogniser (unix port)", ""),
        ("  presses timed", f"{press['presses']} in {press['traces']} traces"),
        ("  CPU per press", f"{press['recogniser_us_per_press']} µs"),
        ("  heap per press", f"{press['recogniser_alloc_bytes_per_press']} B"),
        ("  baseline CPU per press", f"{press['baseline_us_per_press']} µs"),
        ("  baseline heap per press", f"{press['baseline_alloc_bytes_per_press']} B"),
        ("  recogniser / baseline", f"{press['recogniser_to_baseline_ratio']}x"),
        (f"bundle ({result['board']})", ""),
        (
            "  .mpy bundle size",
            f"{bundle['bytes']} B in {bundle['files']} files",
        ),
        ("chatter immunity", ""),
        ("  alarms per 1000 disturbances", f"{chatter['alarms_per_1000']}"),
        ("  alarms (traces woke the unit)", f"{chatter['alarms_woken']}"),
        (f"recognised as alarm, woken (boot {rate['wake_to_app_ms']} ms)", ""),
        ("  triple tap", f"{rate['triple_tap']:.1f} %"),
        ("  hold 1.6-4 s", f"{rate['hold_1600_4000ms']:.1f} %"),
        ("  fast triple tap (known limit)", f"{rate['fast_triple_tap']:.1f} %"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}".rstrip() for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--board", required=True, help="board profile name")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_TRACES} traces per figure and one timing round, for tests",
    )
    args = parser.parse_args(argv)
    traces, rounds = (QUICK_TRACES, QUICK_ROUNDS) if args.quick else (FULL_TRACES, FULL_ROUNDS)
    try:
        result = figures(args.board, traces, rounds)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if result["chatter"]["alarms"]:
        print(
            f"FAIL: {result['chatter']['alarms']} alarm(s) from "
            f"{result['chatter']['traces']} non-alarm disturbance traces (must be 0)",
            file=sys.stderr,
        )
        return EXIT_CHATTER
    return 0


if __name__ == "__main__":
    sys.exit(main())
