"""Store figures for `make bench`: how many units an hour the store's
toolkit takes from blank to checked, and what its app deploy costs.

Throughput: twin units (`Sim(..., blank=True, speed=1.0)`: blank, so `amr
flash` writes MicroPython and deploys the app; deep sleep in real time, so
test mode's minutes are real) go through the store's own CLI as a
technician runs it, each step an `amr` subprocess against a temporary
SQLite registry: `amr flash`, `amr provision`, `amr check` with the button
pressed through the sim's control port when the check asks (`>>> press` on
its stderr). First one unit on one port, then `ports` units: one `amr flash`
with every `--port` (it flashes in parallel), then provision and check of
each unit in its own thread. Units per hour at 1 and at `ports`, the scaling
ratio, and what limits it: each step's time at both (the seconds it loses
at `ports`, split into the amr run and waiting for the unit to sleep), how
much of the run some amr held the registry's write lock (a probe tries
BEGIN IMMEDIATE every 20 ms: a SQLite registry serialises its steps, each
holding the lock while it talks to its unit), and the CPU the run used.

As in the store's tests, the jig talks to a unit at rest: before each step
the bench waits until the unit sleeps again; that wait is counted in the
step that follows it.

Deploy: the app bundle onto a flashed unit through the toolkit's deploy
(amrkit.flashing: mpremote's transport in this process, 2 KiB raw-REPL
writes, then the sweep of files the release no longer has), against the
plain mpremote CLI copying the same files in a subprocess (`mpremote
connect URL fs cp -r amr main.py :`), alternating, from an emptied
filesystem each time, each result checked by its app hash computed on the
unit. Both times include opening the port and entering the raw REPL.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from amrkit import build, flashing
from amrkit.boards import load_board
from amrkit.release import read_release_manifest
from amrkit.twin.control import send
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim

BIN = Path(sys.executable).parent
AMR = str(BIN / "amr")
MPREMOTE = str(BIN / "mpremote")
STEP_TIMEOUT_S = 120  # each step takes seconds; a hang is reported, not waited out
SETTLE_S = 60.0
PRESS_TIMEOUT_S = 30
STEPS = ("flash", "provision", "check")

_CLEAR_SCRIPT = """\
import os
def _amr_rm(d):
    for e in os.ilistdir(d or '/'):
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _amr_rm(p)
            os.rmdir(p)
        else:
            os.remove(p)
_amr_rm('')
"""


@dataclass
class _Store:
    sim: Sim
    urls: dict[str, str]
    env: dict[str, str]
    root: Path
    app: Path
    image: Path

    @property
    def database(self) -> Path:
        return self.root / "registry.sqlite"

    @property
    def release(self) -> Path:
        return self.app.parent / "release.json"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_s() -> float:
    """CPU seconds of this process (the sim's threads) and its reaped children
    (every amr, mpremote and the units' micropython processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _LockProbe:
    """How much of the time some `amr` holds the registry's write lock: a
    thread tries BEGIN IMMEDIATE (never waiting) every PROBE_S and counts the
    tries that find the database locked. Its own hold lasts microseconds."""

    PROBE_S = 0.02

    def __init__(self, database: Path) -> None:
        self._database = database
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, name="bench-lock-probe", daemon=True)
        self.tries = self.locked = 0

    def _probe(self) -> None:
        db = sqlite3.connect(self._database, timeout=0, isolation_level=None)
        try:
            while not self._stop.wait(self.PROBE_S):
                self.tries += 1
                try:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("ROLLBACK")
                except sqlite3.OperationalError:  # "database is locked"
                    self.locked += 1
        finally:
            db.close()

    def __enter__(self) -> _LockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def busy_pct(self) -> float:
        return round(100 * self.locked / self.tries, 1) if self.tries else 0.0


def _run(store: _Store, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            [AMR, *args],
            capture_output=True,
            text=True,
            env=store.env,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(
            f"amr {' '.join(args)} did not end within {STEP_TIMEOUT_S} s:\n"
            f"{_text(err.stdout)}{_text(err.stderr)}"
        ) from err
    if proc.returncode != 0:
        raise RuntimeError(
            f"amr {' '.join(args[:1])} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _settle(store: _Store, name: str) -> float:
    """Wait until the unit sleeps (the jig talks to a unit at rest); seconds waited."""
    unit = store.sim.units[name].unit
    started = time.monotonic()
    while unit.awake_clock() is not None:
        if time.monotonic() > started + SETTLE_S:
            raise RuntimeError(f"{name} never went back to sleep")
        time.sleep(0.05)
    return time.monotonic() - started


def control(sim: Sim, command: dict[str, Any]) -> dict[str, Any]:
    """One command to the sim's control port, as `amr sim press` sends it."""
    return send(sim.control.removeprefix("tcp://"), command, timeout_s=30)


# -- the steps ---------------------------------------------------------------------


def _flash(store: _Store, names: list[str]) -> float:
    settled = sum(_settle(store, name) for name in names)
    ports = [arg for name in names for arg in ("--port", store.urls[name])]
    proc = _run(store, "flash", *ports, "--image", str(store.image), "--app", str(store.app),
                "--json")  # fmt: skip
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if len(lines) != len(names) or not all(line.get("ok") for line in lines):
        raise RuntimeError(f"amr flash: not every unit was flashed: {lines}")
    return settled


def _provision(store: _Store, name: str) -> float:
    settled = _settle(store, name)
    _run(store, "provision", "--port", store.urls[name],
         "--label-dir", str(store.root / "labels"), "--json")  # fmt: skip
    return settled


def _check(store: _Store, name: str) -> float:
    """`amr check`, the button pressed through the control port when it asks."""
    settled = _settle(store, name)
    proc = subprocess.Popen(
        [AMR, "check", "--port", store.urls[name], "--transport", store.sim.ble,
         "--release", str(store.release), "--press-timeout", str(PRESS_TIMEOUT_S),
         "--certificate", str(store.root / f"{name}-check.html"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**store.env, "PYTHONFAULTHANDLER": "1"},  # a hang ends with its threads' stacks
    )  # fmt: skip
    assert proc.stderr is not None
    # Reading stderr has no timeout: SIGABRT after STEP_TIMEOUT_S (faulthandler
    # prints where each thread was, then the process ends).
    watchdog = threading.Timer(STEP_TIMEOUT_S, proc.send_signal, (signal.SIGABRT,))
    watchdog.start()
    err = ""
    try:
        for line in proc.stderr:
            err += line
            if line.startswith(">>> press"):
                reply = control(store.sim, {"cmd": "taps", "unit": name, "count": 3})
                if not reply.get("ok"):
                    proc.kill()
                    raise RuntimeError(f"the sim refused the press on {name}: {reply}")
                break
        out, rest = proc.communicate()
    finally:
        watchdog.cancel()
    if proc.returncode == -signal.SIGABRT:
        raise RuntimeError(
            f"amr check on {name} did not end within {STEP_TIMEOUT_S} s:\n{err}{rest}"
        )
    report = json.loads(out) if out.strip() else {}
    if proc.returncode != 0 or not report.get("passed"):
        failed = [c for c in report.get("checks", []) if not c["passed"]]
        raise RuntimeError(f"amr check on {name} exited {proc.returncode}: {failed}\n{err}{rest}")
    return settled


def _timed(work: Callable[[], float]) -> tuple[float, float]:
    """(seconds the step took, of which waiting for its unit to sleep)."""
    started = time.perf_counter()
    settled = work()
    return time.perf_counter() - started, settled


# -- throughput -----------------------------------------------------------------------


Timing = tuple[float, float]  # (seconds a step took, of which waiting for the unit to sleep)


def _one_port(store: _Store, name: str) -> dict[str, Any]:
    cpu, started = _cpu_s(), time.perf_counter()
    with _LockProbe(store.database) as probe:
        steps = {
            "flash": _timed(lambda: _flash(store, [name])),
            "provision": _timed(lambda: _provision(store, name)),
            "check": _timed(lambda: _check(store, name)),
        }
    wall = time.perf_counter() - started
    return _rate(1, wall, _cpu_s() - cpu, steps, probe.busy_pct)


def _parallel(store: _Store, names: list[str]) -> dict[str, Any]:
    """One amr flash for every port, then each unit's provision and check in a thread."""
    cpu, started = _cpu_s(), time.perf_counter()
    lock = threading.Lock()
    times: dict[str, list[Timing]] = {"provision": [], "check": []}

    def rest(name: str) -> None:
        for step, work in (("provision", _provision), ("check", _check)):
            timing = _timed(partial(work, store, name))
            with lock:
                times[step].append(timing)

    with _LockProbe(store.database) as probe:
        steps = {"flash": _timed(lambda: _flash(store, names))}
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="bench-store") as pool:
            for done in [pool.submit(rest, name) for name in names]:
                done.result()
    wall = time.perf_counter() - started
    for step, timings in times.items():  # a unit's step, on average
        steps[step] = (
            statistics.fmean(t for t, _ in timings),
            statistics.fmean(s for _, s in timings),
        )
    return _rate(len(names), wall, _cpu_s() - cpu, steps, probe.busy_pct)


def _rate(
    units: int, wall: float, cpu: float, steps: dict[str, Timing], lock_pct: float
) -> dict[str, Any]:
    lock_s = lock_pct / 100 * wall / units
    return {
        "units": units,
        "wall_s": round(wall, 1),
        "units_per_hour": round(units * 3600 / wall, 1),
        # flash: the one amr flash of every port; provision, check: a unit's, on average.
        "step_s": {step: round(t, 2) for step, (t, _) in steps.items()},
        # The part of each step spent waiting for the unit(s) to sleep first.
        "settle_s": {step: round(s, 2) for step, (_, s) in steps.items()},
        "cpu_busy_pct": round(100 * cpu / (wall * _cores()), 1),
        # How much of the wall time some amr held the registry's write lock,
        # that per unit, and the rate the lock alone would allow.
        "registry_lock_busy_pct": lock_pct,
        "registry_lock_s_per_unit": round(lock_s, 3),
        "registry_bound_units_per_hour": round(3600 / lock_s) if lock_s else None,
    }


def _amr_start_s(env: dict[str, str], runs: int = 3) -> float:
    """Wall seconds of `amr --help`: what each step pays to start Python and
    the CLI before it does anything (four of them at once share the cores)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([AMR, "--help"], capture_output=True, env=env, check=True, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _limits(one: dict[str, Any], many: dict[str, Any], start_s: float) -> list[str]:
    """What keeps the scaling below `ports` x, largest first. With perfect
    scaling each step would take as long with n units at once as with one
    (the flash is one job for all n; provision and check run per unit, side
    by side): the seconds each step loses at n, split into waiting for the
    units to sleep and the amr run itself; then the registry lock and the CPU."""
    n = many["units"]
    lost: dict[str, tuple[float, str]] = {}
    for step in STEPS:
        t1, tn = one["step_s"][step], many["step_s"][step]
        s1, sn = one["settle_s"][step], many["settle_s"][step]
        lost[step] = (
            tn - t1,
            f"{step}: {tn:.1f} s at {n} ports against {t1:.1f} s at 1 ({tn - t1:+.1f} s: "
            f"{(tn - sn) - (t1 - s1):+.1f} s in amr {step}, {sn - s1:+.1f} s waiting for "
            f"{'the units' if step == 'flash' else 'the unit'} to sleep)",
        )
    lines = [line for _, line in sorted(lost.values(), key=lambda v: -v[0])]
    bound = many["registry_bound_units_per_hour"]
    lines.append(
        f"registry write lock: held {many['registry_lock_busy_pct']} % of the run at {n} ports "
        f"({one['registry_lock_busy_pct']} % at 1), {many['registry_lock_s_per_unit']} s a "
        f"unit: alone it would allow {bound} units/h"
    )
    lines.append(
        f"CPU: {many['cpu_busy_pct']} % of {_cores()} cores busy on average at {n} ports "
        f"({one['cpu_busy_pct']} % at 1), the twin's units included; each amr step "
        f"starts with {start_s:.2f} s of Python and CLI start-up, {n} at once on "
        f"{_cores()} cores"
    )
    return lines


# -- deploy --------------------------------------------------------------------------


def _clear(url: str) -> None:
    transport = flashing._open_transport(url)
    try:
        flashing._enter_raw(url, transport, 10.0)
        transport.exec(_CLEAR_SCRIPT)
    finally:
        flashing._close(transport)


def _hash_is(url: str, expected: str, how: str) -> None:
    got = flashing.app_hash_on_unit(url)
    if got != expected:
        raise RuntimeError(
            f"after the {how} the unit's app hash is {got[:16]}, not {expected[:16]}"
        )


def _toolkit_deploy(url: str, app: Path, manifest: dict[str, Any]) -> float:
    started = time.perf_counter()
    transport = flashing._open_transport(url)
    try:
        flashing._enter_raw(url, transport, 10.0)
        flashing._deploy(url, transport, app, manifest, lambda stage, fraction: None)
    finally:
        flashing._close(transport)
    return time.perf_counter() - started


def _mpremote_cp(url: str, app: Path) -> float:
    entries = sorted(p.name for p in app.iterdir())
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [MPREMOTE, "connect", url, "fs", "cp", "-r", *entries, ":"],
            cwd=app,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(
            f"mpremote cp did not end within {STEP_TIMEOUT_S} s:\n"
            f"{_text(err.stdout)}{_text(err.stderr)}"
        ) from err
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"mpremote cp exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return elapsed


def deploy(store: _Store, name: str, rounds: int) -> dict[str, Any]:
    """The toolkit's deploy against `mpremote fs cp -r`, alternating, on a
    flashed unit emptied before each copy."""
    url = store.urls[name]
    manifest = read_release_manifest(store.app)
    files, size = build.bundle_size(store.app)
    toolkit, plain = [], []
    _settle(store, name)
    for _ in range(rounds):
        _clear(url)
        toolkit.append(_toolkit_deploy(url, store.app, manifest))
        _hash_is(url, manifest["app_hash"], "toolkit's deploy")
        _clear(url)
        plain.append(_mpremote_cp(url, store.app))
        _hash_is(url, manifest["app_hash"], "mpremote cp")
    ours, theirs = statistics.median(toolkit), statistics.median(plain)
    return {
        "rounds": rounds,
        "files": files,
        "bytes": size,
        "toolkit_deploy_s": round(ours, 2),
        "mpremote_cp_s": round(theirs, 2),
        "toolkit_to_mpremote_ratio": round(ours / theirs, 2),
        "mpremote_command": "mpremote connect URL fs cp -r "
        + " ".join(sorted(p.name for p in store.app.iterdir()))
        + " :",
    }


# -- the whole part -------------------------------------------------------------------


def figures(board_name: str, ports: int = 4, deploy_rounds: int = 3) -> dict[str, Any]:
    """Units per hour at 1 and `ports` ports, and the deploy comparison."""
    board = load_board(board_name)
    load = os.getloadavg()[0]  # the machine may be shared: context for the figures
    with tempfile.TemporaryDirectory(prefix="amr-bench-store-") as tmp:
        root = Path(tmp)
        app = build.build(board, root / "build")
        image = root / "image.bin"
        image.write_bytes(stand_in_image())
        env = {
            **os.environ,
            "AMR_REGISTRY": f"sqlite:///{root / 'registry.sqlite'}",  # _Store.database
            "AMR_MASTER_KEY_FILE": str(root / "master.key"),
            "AMR_ACTOR": "bench",
        }
        with Sim(1 + ports, board, root / "fleet", blank=True, speed=1.0) as sim:
            urls = {name: str(u.announce()["serial"]) for name, u in sim.units.items()}
            store = _Store(sim, urls, env, root, app, image)
            _run(store, "units", "init", "--master-key-file", env["AMR_MASTER_KEY_FILE"])
            names = list(urls)
            one = _one_port(store, names[0])
            many = _parallel(store, names[1:])
            copied = deploy(store, names[0], deploy_rounds)
        start_s = _amr_start_s(env)
    return {
        "board": board_name,
        "cores": _cores(),
        "one_port": one,
        "many_ports": many,
        "scaling_ratio": round(many["units_per_hour"] / one["units_per_hour"], 2),
        "load_average_before": round(load, 2),
        "amr_start_s": round(start_s, 2),
        "limits": _limits(one, many, start_s),
        "deploy": copied,
    }


if __name__ == "__main__":  # a quick look: python tools/bench_store.py [BOARD [PORTS [ROUNDS]]]
    args = sys.argv[1:]
    print(
        json.dumps(
            figures(
                args[0] if args else "esp32c3-coin",
                int(args[1]) if len(args) > 1 else 2,
                int(args[2]) if len(args) > 2 else 1,
            ),
            indent=2,
        )
    )
