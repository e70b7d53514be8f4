"""Fuzz campaign: every fuzz target (tools/fuzz_harness.py), `--per-target`
inputs each, made from its seed corpus (tests/corpus/<target>/) by
mutation, with a per-input time limit. For each target: inputs, distinct
error messages, crashes and hangs (both must be 0), inputs per second, and
whether any key or passphrase appeared in anything it said.

Firmware targets run in one long-lived unix-port micropython each; the two
that reach a twin unit over its serial port and over its radio take fewer
inputs: each costs a raw-REPL exchange or a BLE write. The sim's control
port takes its full count over one connection, on a sim that withdraws a
power or clock command after fh.COMMAND_TIMEOUT_S rather than 30 s (a unit
kept awake by the fuzz would otherwise hold most of the campaign).

    python tools/bench_fuzz.py [--per-target 100000] [--out build/fuzz.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_harness as fh

from amrkit.boards import load_board
from amrkit.twin.sim import Sim

# The slow targets' share of --per-target. nvs runs the info and self-test
# commands over six fuzzed flash slots (12 ms an input): the record decoding
# it reaches has 100,000 inputs of its own (config, provisioning, state, store).
NVS_SHARE = 0.1
SERIAL_SHARE = 0.005
RADIO_SHARE = 0.002


def _campaign(
    count: int, secrets: fh.Secrets, step: Callable[[random.Random], tuple[str, fh.Outcome]]
) -> dict[str, Any]:
    rng = random.Random(count)
    tally = fh.Tally(secrets)
    for _ in range(count):
        tally.add(*step(rng))
    return tally.result()


def _seeds(target: str) -> list[bytes]:
    return [data for _name, data in fh.corpus(target)]


def _firmware(per_target: int, work: Path) -> dict[str, dict[str, Any]]:
    unit_dir, known = fh.unit_dir_for_firmware(work / "unit")
    secrets = fh.secrets_for(known, fh.frame_unit())
    results: dict[str, dict[str, Any]] = {}
    commands = sorted(fh.WIRED_NAMES)
    wired = [fh.wired_input(s) for s in _seeds("wired")]
    with fh.FirmwareDriver(unit_dir) as driver:

        def wired_step(rng: random.Random) -> tuple[str, fh.Outcome]:
            name, arg = rng.choice(wired)
            pick = rng.randrange(4)
            if pick == 0:
                name = fh.mutate_text(rng, name, [])
            elif pick == 1:
                arg = fh.mutate_text(rng, arg or "", [])
            elif pick == 2:
                name = rng.choice(commands)
                arg = rng.choice((None, rng.randbytes(rng.randrange(100)).hex()))
            else:
                arg = None if arg is None or rng.randrange(4) == 0 else fh.mutate_text(rng, arg, [])
            return f"wired {name!r} {arg!r}", fh.wired_outcome(driver, name, arg)

        results["wired"] = _campaign(per_target, secrets, wired_step)
        points = _seeds("control_point")

        def gatt_step(rng: random.Random) -> tuple[str, fh.Outcome]:
            value = fh.mutate(rng, rng.choice(points), points)[:600]
            handle = 5 if rng.randrange(3) else rng.randrange(20)
            trusted = rng.randrange(5) > 0
            return (
                f"gatt handle {handle} trusted {trusted} {value.hex()}",
                fh.gatt_outcome(driver, rng.randrange(4), handle, trusted, value),
            )

        results["control_point"] = _campaign(per_target, secrets, gatt_step)
        for target in ("config", "provisioning", "state"):
            seeds = _seeds(target)

            def record_step(rng: random.Random, t: str = target, s: list[bytes] = seeds) -> Any:
                data = fh.mutate(rng, rng.choice(s), s)
                return f"{t} {data.hex()}", fh.record_outcome(driver, t, data)

            results[target] = _campaign(per_target, secrets, record_step)
        stores = [(json.loads(s)["kind"], fh.slots_input(s)) for s in _seeds("store")]
        records = [s for _k, slots in stores for s in slots if s]

        def store_step(rng: random.Random) -> tuple[str, fh.Outcome]:
            kind, slots = rng.choice(stores)
            slots = [
                s if rng.randrange(3) == 0 else fh.mutate(rng, s or b"", records) for s in slots
            ]
            what = f"store {kind:x} " + " ".join(fh.field_hex(s) for s in slots)
            return what, fh.record_outcome(driver, "store", bytes((kind,)), *slots)

        results["store"] = _campaign(per_target, secrets, store_step)
        flash = [fh.slots_input(s) for s in _seeds("nvs")]

        def nvs_step(rng: random.Random) -> tuple[str, fh.Outcome]:
            slots = [
                s if rng.randrange(2) else fh.mutate(rng, s or b"", records)
                for s in rng.choice(flash)
            ]
            what = "nvs " + " ".join(fh.field_hex(s) for s in slots)
            return what, fh.nvs_outcome(driver, slots)

        results["nvs"] = _campaign(max(1, int(per_target * NVS_SHARE)), secrets, nvs_step)
    return results


def _host(per_target: int, work: Path) -> dict[str, dict[str, Any]]:
    secrets = fh.secrets_for(fh.frame_unit())
    files = fh.FileTarget(work)
    results: dict[str, dict[str, Any]] = {}
    frames = _seeds("frame")
    target = fh.FrameTarget()

    def frame_step(rng: random.Random) -> tuple[str, fh.Outcome]:
        data = (
            fh.mutate(rng, rng.choice(frames), frames)
            if rng.randrange(4)
            else b"\x1e\xff" + rng.randbytes(29)
        )
        return data.hex(), _limited(lambda: target(data))

    results["frame"] = _campaign(per_target, secrets, frame_step)
    bundles = _seeds("bundle-seeds")
    quick = [b for b in bundles if b'"n": 32768' not in b]  # the real cost: one in 50

    def bundle_step(rng: random.Random) -> tuple[str, fh.Outcome]:
        pool = bundles if rng.randrange(50) == 0 else quick
        data = fh.mutate(rng, rng.choice(pool), pool)
        return data.decode(errors="replace"), _limited(lambda: fh.bundle_outcome(files, data))

    results["bundle"] = _campaign(per_target, secrets, bundle_step)
    boards = _seeds("board")

    def board_step(rng: random.Random) -> tuple[str, fh.Outcome]:
        seed = rng.choice(boards)
        if rng.randrange(4):
            data = fh.mutate_toml(rng, seed.decode(errors="replace")).encode()
        else:
            data = fh.mutate(rng, seed, boards)
        return data.decode(errors="replace"), _limited(lambda: fh.board_outcome(files, data))

    results["board"] = _campaign(per_target, secrets, board_step)
    captures = _seeds("capture-seeds")

    def capture_step(rng: random.Random) -> tuple[str, fh.Outcome]:
        data = fh.mutate(rng, rng.choice(captures), captures)
        return data.decode(errors="replace"), _limited(lambda: fh.capture_outcome(files, data))

    results["capture"] = _campaign(per_target, secrets, capture_step)
    return results


def _limited(run: Callable[[], fh.Outcome]) -> fh.Outcome:
    try:
        with fh.time_limit(fh.INPUT_LIMIT_S):
            return run()
    except fh.Hang as hang:
        return fh.Outcome("hang", str(hang))


def _twin(per_target: int, work: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with Sim(2, load_board(), work / "fleet", command_timeout_s=fh.COMMAND_TIMEOUT_S) as sim:
        units = [u.known for u in sim.units.values() if u.known is not None]
        secrets = fh.secrets_for(*units, fh.frame_unit())
        names = list(sim.units)
        # The serial and radio campaigns first, on units as they boot: the
        # control port's fuzz leaves them in any state (off, a flat cell,
        # every radio packet lost).
        wired = [fh.wired_input(s) for s in _seeds("wired")]
        count = max(1, int(per_target * SERIAL_SHARE))
        results["wired_serial"] = asyncio.run(
            fh.serial_campaign(sim, "unit-1", wired, count, secrets)
        )
        points = _seeds("control_point")
        count = max(1, int(per_target * RADIO_SHARE))
        results["control_point_radio"] = asyncio.run(
            fh.radio_campaign(sim, "unit-2", points, count, secrets)
        )
        lines = _seeds("control")
        connection = fh.ControlConnection(sim.control)

        def control_step(rng: random.Random) -> tuple[str, fh.Outcome]:
            line = fh.control_line(rng, names, lines)
            return line.decode(errors="replace"), connection(line)

        results["control"] = _campaign(per_target, secrets, control_step)
        connection.close()
        results["control"]["over_one_connection"] = connection.reconnects == 0
        results["control"]["sim_alive"] = fh.sim_alive(sim)
    return results


def _group(args: tuple[str, int, str]) -> dict[str, dict[str, Any]]:
    name, per_target, work = args
    group = {"firmware": _firmware, "host": _host, "twin": _twin}[name]
    (Path(work) / name).mkdir()
    return group(per_target, Path(work) / name)


def run(per_target: int, workers: int = 2) -> dict[str, Any]:
    """Every target's figures; the firmware, host and twin targets in parallel."""
    results: dict[str, Any] = {}
    with fh.scratch() as tmp, ProcessPoolExecutor(workers) as pool:
        groups = [(name, per_target, tmp) for name in ("firmware", "host", "twin")]
        for part in pool.map(_group, groups):
            results |= part
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-target", type=int, default=100000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = run(args.per_target)
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    bad = [t for t, r in results.items() if r["crashes"] or r["hangs"] or r["secret_seen"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
