"""Benchmark the press recogniser and the firmware bundle for one board.

    python tools/bench.py --board esp32c3-coin [--out build/bench.json] [--quick]

Figures (printed as a table and written as JSON):
  - CPU time and heap allocated per press by amr.press.Recogniser on the
    MicroPython unix port (tools/bench_press.py), with a baseline measured in
    the same run (the same samples, one no-op call per sample) and the ratio,
    which is what stays comparable across machines;
  - total bytes of the board's .mpy bundle (`amr build`);
  - receiver throughput on CPython (tools/bench_receiver.py): frames/s that
    amrkit.receiver.Receiver verifies for 1,000 known units, with its state
    in SQLite in memory and in a file, next to bthome-ble decrypting as many
    encrypted BTHome v2 adverts from as many devices, and the ratios;
  - firmware frame cost on the MicroPython unix port (tools/bench_frame.py):
    CPU time and heap allocated per amr.frame.Sealer.seal() call, with a
    baseline measured in the same run (struct.pack of the plaintext alone)
    and the ratio; the sealed frame is checked against the host encoder;
  - chatter immunity: alarms raised by non-alarm disturbance traces (must be 0);
  - the share of deliberate alarm gestures (triple taps, holds of 1.6-4 s,
    fast triple taps: taps 80-150 ms, gaps 120-250 ms) recognised by a unit
    they woke, for every board and deployment (stock .mpy files, the frozen
    fast-boot image; edges during the boot are not seen), against a unit
    already awake; the default deployment must reach 99 % of fast triple taps;
  - the twin (tools/bench_twin.py): simulated seconds per wall second for a
    sleeping fleet of 50 units, against the cost of a bare unix-port process
    start, and press-to-verified-alert latency over 200 presses, p50 and p99,
    split into gesture recognition, firmware until the first alert frame and
    receiver verification;
  - the same fast triple taps through the whole app on a twin unit of the
    board, for each deployment (the twin holds the app back for the wake
    time), 200 presses each;
  - battery life (tools/bench_power.py, the model behind `amr power`): the
    forecast years of every coin-cell board for the default policy (heartbeat
    every 6 h, 2 alerts and 1 store check a month), with cover traffic, an
    hourly heartbeat and in the cold, against the 2-year goal, and the
    brownout margin at end of life;
  - the store (tools/bench_store.py): units per hour taken from blank to
    checked (amr flash, amr provision, amr check with its guided press) on
    twin units, with 1 port and with 4 in parallel, the scaling ratio and
    what limits it (each step's time at 4 ports against 1, the registry's
    write lock, the CPU); and the app deploy through the toolkit's transport
    against `mpremote connect URL fs cp -r` of the same files, and the ratio;
  - the air (tools/bench_air.py): press-to-verified-alert latency, p50 and
    p99 over --air-presses presses (200), through receivers that scan in
    windows (amrkit.twin.receivers: a gateway, Android's LOW_LATENCY,
    BALANCED and LOW_POWER scan modes, a phone with its screen off), with
    the ratio against the ideal radio that hears every frame, measured in
    the same run; presses not heard within 60 s; retries and ms of
    advertising and scanning per alert sequence; and how soon the unit's
    own scan hears an acknowledgement;
  - trust (tools/bench_trust.py): power cuts, press storms, 200 units with
    20 pressed at once, the acknowledgement's time on the air.

Exit codes: 0 done, 1 chatter raised an alarm, 2 the benchmark failed to run,
3 a board's default deployment recognised under 99 % of woken fast triple
taps (judged on full runs only: --quick has too few traces for a 99 % goal),
4 a trust figure that must hold did not (tools/bench_trust.py: a power cut
reused a counter or lost an alert, a press storm raised the wrong alerts, an
alert under load was not forwarded).
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

from amrkit import build
from amrkit.boards import DEPLOYMENTS, Board, board_names, load_board
from amrkit.paths import firmware_dir, micropython_binary, platform_dir
from amrkit.protocol import Frame, Kind, derive_keys, encode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_air
import bench_power
import bench_receiver
import bench_store
import bench_trust
import bench_twin

TOOLS = Path(__file__).resolve().parent
PRESS_SCRIPT = TOOLS / "bench_press.py"
FRAME_SCRIPT = TOOLS / "bench_frame.py"
FULL_TRACES = 1000
QUICK_TRACES = 50
FULL_ROUNDS = 5
QUICK_ROUNDS = 1
RECEIVER_UNITS = 1000
FULL_RECEIVER_FRAMES = 20000
QUICK_RECEIVER_FRAMES = 2000
FULL_RECEIVER_ROUNDS = 3
QUICK_RECEIVER_ROUNDS = 1
FRAME_CALLS = 2000
FULL_STORE = (4, 3)  # parallel ports, deploy rounds
QUICK_STORE = (2, 1)
FULL_AIR_PRESSES = 200
QUICK_AIR_PRESSES = 3
FRAME_SECRET = b"bench frame registry secret"
FRAME_UNIT_ID = bytes.fromhex("a3e0000000000001")
EXIT_CHATTER = 1
EXIT_FAILED = 2
EXIT_GESTURE = 3
EXIT_TRUST = 4
GOAL_FAST_TRIPLE_PCT = 99.0


def run_micropython(script: Path, *args: str) -> dict[str, Any]:
    """Run a tools/ script under the unix port; its JSON result line."""
    path = os.pathsep.join([str(firmware_dir()), str(platform_dir().parent), ".frozen"])
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=64M", str(script), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=path),
        timeout=600,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_press_bench(traces: int, rounds: int, boots_ms: list[int]) -> dict[str, Any]:
    """Run tools/bench_press.py under the unix port; its JSON result line."""
    boots = ",".join(str(ms) for ms in boots_ms)
    return run_micropython(PRESS_SCRIPT, str(traces), str(rounds), boots)


def recognition(raw: dict[str, Any], boards: list[Board]) -> dict[str, Any]:
    """Alarm gestures recognised by a unit they woke, for each board and
    deployment (the board's default marked), against an awake unit."""
    rates = raw["recognised_pct"]
    return {
        "traces": raw["traces"],
        "awake": rates["awake"],
        "boards": {
            board.name: {
                deployment: {
                    "wake_to_app_ms": ms,
                    "default": deployment == board.deployment,
                    **rates[str(ms)],
                    "chatter_alarms": raw["chatter_alarms_woken"][str(ms)],
                }
                for deployment, ms in board.wake_to_app.items()
            }
            for board in boards
        },
    }


def frame_figures(calls: int, rounds: int) -> dict[str, Any]:
    """Per-call cost of amr.frame.Sealer.seal() on the unix port, and its baseline."""
    keys = derive_keys(FRAME_SECRET, FRAME_UNIT_ID)
    key_block = FRAME_UNIT_ID + keys.enc + keys.id + keys.ack
    raw = run_micropython(FRAME_SCRIPT, key_block.hex(), str(calls), str(rounds))
    sample = raw["sample"]
    expected = encode(
        keys,
        Frame(
            Kind(sample["kind"]),
            sample["counter"],
            sample["alert_id"],
            sample["attempt"],
            sample["battery_pct"],
            sample["flags"],
        ),
    )
    if bytes.fromhex(sample["frame"]) != expected:
        raise RuntimeError("bench_frame.py: the firmware's frame differs from the host encoder's")
    seal_us = raw["seal_us"] / raw["calls"]
    base_us = raw["baseline_us"] / raw["calls"]
    return {
        "calls": raw["calls"],
        "rounds": raw["rounds"],
        "seal_us_per_frame": round(seal_us, 2),
        "seal_alloc_bytes_per_frame": round(raw["seal_alloc_bytes"] / raw["calls"], 1),
        "baseline_us_per_frame": round(base_us, 2),
        "baseline_alloc_bytes_per_frame": round(raw["baseline_alloc_bytes"] / raw["calls"], 1),
        "seal_to_baseline_ratio": round(seal_us / base_us, 1) if base_us else None,
        "matches_host_encoder": True,
    }


def bundle_bytes(board: str) -> tuple[int, int]:
    """(files, bytes) of the board's app bundle, built into a temporary dir."""
    with tempfile.TemporaryDirectory() as tmp:
        app = build.build(load_board(board), tmp)
        return build.bundle_size(app)


def figures(
    board: str,
    traces: int,
    rounds: int,
    receiver_frames: int,
    receiver_rounds: int,
    fleet: tuple[int, int] = (50, 6),
    latency_presses: int = 200,
    store: tuple[int, int] = FULL_STORE,
    air_presses: int = FULL_AIR_PRESSES,
    quick: bool = False,
) -> dict[str, Any]:
    boards = [load_board(name) for name in board_names()]
    raw = run_press_bench(
        traces, rounds, sorted({ms for b in boards for ms in b.wake_to_app.values()})
    )
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
            "alarms_woken": sum(raw["chatter_alarms_woken"].values()),
        },
        "recognition_pct": recognition(raw, boards),
        "receiver": bench_receiver.figures(RECEIVER_UNITS, receiver_frames, receiver_rounds),
        "frame": frame_figures(FRAME_CALLS, rounds),
        "twin_fleet": bench_twin.fleet_speed(board, *fleet),
        "twin_latency": bench_twin.latency(board, latency_presses),
        "twin_woken": [
            bench_twin.woken_fast_triple_taps(board, deployment, latency_presses)
            for deployment in DEPLOYMENTS
        ],
        "store": bench_store.figures(board, *store),
        "power": bench_power.figures(),
        "air": bench_air.figures(board, air_presses),
        "trust": bench_trust.figures(quick),
    }


def _p(figure: dict[str, float]) -> str:
    return f"{figure['p50']} / {figure['p99']} ms"


def _power_rows(power: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (
            f"battery life on a CR2032 (amr power; goal {power['goal_years']} y):"
            " years, / goal, brownout margin at end of life",
            "",
        )
    ]
    for name, policies in power["boards"].items():
        for label, r in policies.items():
            rows.append(
                (
                    f"  {name}, {label}",
                    f"{r['years']} y  {r['to_goal_ratio']}x  {r['brownout_margin_mv']:+} mV"
                    f" ({r['worst_session']})",
                )
            )
    rows.append(("  lowest brownout margin", f"{power['min_brownout_margin_mv']:+} mV"))
    return rows


def _rates(r: dict[str, Any]) -> str:
    return f"{r['triple_tap']:.1f} / {r['hold_1600_4000ms']:.1f} / {r['fast_triple_tap']:.1f} %"


def _store_rate(rate: dict[str, Any]) -> str:
    steps = rate["step_s"]
    return (
        f"{rate['units_per_hour']} units/h ({rate['units']} in {rate['wall_s']} s; "
        f"flash {steps['flash']} s; a unit's provision {steps['provision']} s, "
        f"check {steps['check']} s)"
    )


def table(result: dict[str, Any]) -> str:
    press, chatter, bundle = result["press"], result["chatter"], result["bundle"]
    rate = result["recognition_pct"]
    receiver, frame = result["receiver"], result["frame"]
    fleet, latency = result["twin_fleet"], result["twin_latency"]
    store = result["store"]
    one, many, deploy = store["one_port"], store["many_ports"], store["deploy"]
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
        (
            f"alarm gestures recognised ({rate['traces']} each): triple tap / hold 1.6-4 s /"
            " fast triple tap",
            "",
        ),
        ("  awake (every edge seen)", _rates(rate["awake"])),
        *(
            (
                f"  woken, {name} {deployment} ({r['wake_to_app_ms']} ms)"
                + (" default" if r["default"] else ""),
                _rates(r),
            )
            for name, deployments in rate["boards"].items()
            for deployment, r in deployments.items()
        ),
        ("receiver throughput (CPython, one thread)", ""),
        (
            "  frames verified",
            f"{receiver['frames']} from {receiver['units']} units, best of {receiver['rounds']}",
        ),
        ("  Receiver, SQLite in memory", f"{receiver['receiver_memory_frames_per_s']} frames/s"),
        ("  Receiver, SQLite file", f"{receiver['receiver_file_frames_per_s']} frames/s"),
        (
            f"  bthome-ble ({receiver['bthome_devices']} devices)",
            f"{receiver['bthome_frames_per_s']} frames/s",
        ),
        ("  Receiver in memory / bthome-ble", f"{receiver['receiver_memory_to_bthome_ratio']}x"),
        ("  Receiver file / bthome-ble", f"{receiver['receiver_file_to_bthome_ratio']}x"),
        ("frame sealing (unix port)", ""),
        ("  frames sealed", f"{frame['calls']}, best of {frame['rounds']}"),
        ("  CPU per frame", f"{frame['seal_us_per_frame']} µs"),
        ("  heap per frame", f"{frame['seal_alloc_bytes_per_frame']} B"),
        ("  baseline CPU (struct.pack)", f"{frame['baseline_us_per_frame']} µs"),
        ("  baseline heap (struct.pack)", f"{frame['baseline_alloc_bytes_per_frame']} B"),
        ("  seal / baseline", f"{frame['seal_to_baseline_ratio']}x"),
        ("twin: sleeping fleet", ""),
        (
            "  units x virtual hours",
            f"{fleet['units']} x {fleet['virtual_hours']} h in {fleet['wall_s']} s",
        ),
        ("  simulated s per wall s", f"{fleet['simulated_s_per_wall_s']}"),
        (
            "  per boot / bare process start",
            f"{fleet['ms_per_boot']} ms / "
            f"{fleet['baseline_bare_process_ms']} ms = {fleet['boot_to_bare_process_ratio']}x",
        ),
        (f"twin: press to verified alert ({latency['presses']} presses)", ""),
        ("  gesture recognition p50 / p99", _p(latency["gesture_recognition_ms"])),
        ("  firmware until first frame", _p(latency["firmware_until_first_frame_ms"])),
        ("  receiver verification", _p(latency["receiver_verify_ms"])),
        ("  total", _p(latency["total_ms"])),
        ("  firmware share (p50)", f"{latency['firmware_share_pct_p50']} %"),
        ("twin: woken fast triple taps through the whole app", ""),
        *(
            (
                f"  {w['deployment']} ({w['wake_to_app_ms']} ms)",
                f"{w['recognised_pct']:.1f} % of {w['presses']}",
            )
            for w in result["twin_woken"]
        ),
        *_power_rows(result["power"]),
        ("store: blank to checked on twin units (flash, provision, check)", ""),
        ("  1 port", _store_rate(one)),
        (f"  {many['units']} ports in parallel", _store_rate(many)),
        (f"  {many['units']} ports / 1 port", f"{store['scaling_ratio']}x"),
        *((f"  limit {n}", line) for n, line in enumerate(store["limits"], 1)),
        (f"store: app deploy ({deploy['files']} files, {deploy['bytes']} B)", ""),
        ("  toolkit (mpremote's transport)", f"{deploy['toolkit_deploy_s']} s"),
        ("  mpremote fs cp -r (CLI)", f"{deploy['mpremote_cp_s']} s"),
        ("  toolkit / mpremote cp", f"{deploy['toolkit_to_mpremote_ratio']}x"),
        *bench_air.rows(result["air"]),
        *bench_trust.rows(result["trust"]),
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
        help=(
            f"{QUICK_TRACES} traces per figure, {QUICK_RECEIVER_FRAMES} receiver frames, "
            f"{QUICK_STORE[0]} parallel store ports and one timing round, for tests"
        ),
    )
    parser.add_argument(
        "--air-presses",
        type=int,
        help=f"presses per receiver profile for the air figures ({FULL_AIR_PRESSES}; "
        f"{QUICK_AIR_PRESSES} with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        traces, rounds = QUICK_TRACES, QUICK_ROUNDS
        receiver_frames, receiver_rounds = QUICK_RECEIVER_FRAMES, QUICK_RECEIVER_ROUNDS
        fleet, presses, store = (3, 2), 5, QUICK_STORE
    else:
        traces, rounds = FULL_TRACES, FULL_ROUNDS
        receiver_frames, receiver_rounds = FULL_RECEIVER_FRAMES, FULL_RECEIVER_ROUNDS
        fleet, presses, store = (50, 6), 200, FULL_STORE
    air_presses = args.air_presses or (QUICK_AIR_PRESSES if args.quick else FULL_AIR_PRESSES)
    try:
        result = figures(
            args.board,
            traces,
            rounds,
            receiver_frames,
            receiver_rounds,
            fleet,
            presses,
            store,
            air_presses,
            args.quick,
        )
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if result["chatter"]["alarms"] or result["chatter"]["alarms_woken"]:
        print(
            f"FAIL: {result['chatter']['alarms']} alarm(s) awake and"
            f" {result['chatter']['alarms_woken']} woken from "
            f"{result['chatter']['traces']} non-alarm disturbance traces (must be 0)",
            file=sys.stderr,
        )
        return EXIT_CHATTER
    broken = bench_trust.failures(result["trust"])
    if broken:
        print("FAIL: " + "; ".join(broken), file=sys.stderr)
        return EXIT_TRUST
    short = [] if args.quick else gesture_shortfalls(result)
    if short:
        print("FAIL: " + "; ".join(short), file=sys.stderr)
        return EXIT_GESTURE
    return 0


def gesture_shortfalls(result: dict[str, Any]) -> list[str]:
    """Boards whose default deployment misses the fast-triple-tap goal."""
    return [
        f"{name}: {r['fast_triple_tap']:.1f} % of woken fast triple taps recognised with its"
        f" default {deployment} deployment (goal {GOAL_FAST_TRIPLE_PCT} %)"
        for name, deployments in result["recognition_pct"]["boards"].items()
        for deployment, r in deployments.items()
        if r["default"] and r["fast_triple_tap"] < GOAL_FAST_TRIPLE_PCT
    ]


if __name__ == "__main__":
    sys.exit(main())
