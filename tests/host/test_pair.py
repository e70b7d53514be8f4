"""`amr pair` as a technician runs it, against a twin unit: provisioned by
the store's own `amr provision` (keys in the registry), service mode opened
over the wire (the `service` command) or by the maintenance gesture, paired
over the virtual radio with LE Secure Connections and the passkey from its
keys, its bonds listed and cleared, the "pair" row in the audit log; and
each failure a person can cause ends in a message and its exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sim_control import control

from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.registry import MasterKey, Registry
from amrkit.twin.sim import Sim
from amrkit.workflows.registration import record_flash

AMR = str(Path(sys.executable).with_name("amr"))
PASS = "pair test passphrase"
EXIT_KEYS, EXIT_RADIO, EXIT_UNIT = 3, 4, 6


def at_rest(sim: Sim) -> None:
    """Before a gesture: the unit is done with its wake (asleep), so the
    taps start a wake of their own, as a technician's would on the bench."""
    unit = sim.units["unit-1"].unit
    deadline = time.monotonic() + 60
    while unit.awake_clock() is not None:
        assert time.monotonic() < deadline, "the unit never went back to sleep"
        time.sleep(0.1)


def amr(ns: SimpleNamespace, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AMR, *args], capture_output=True, text=True, timeout=120, env=ns.env, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("pair")
    env = {
        **os.environ,
        "AMR_REGISTRY": f"sqlite:///{root / 'registry.sqlite'}",
        "AMR_MASTER_KEY_FILE": str(root / "master.key"),
        "AMR_ACTOR": "tech-1",
        "AMR_BUNDLE_PASSPHRASE": PASS,
    }
    with Sim(1, load_board(), root / "fleet") as sim:
        ns = SimpleNamespace(sim=sim, env=env, root=root)
        ns.url = str(sim.units["unit-1"].announce()["serial"])
        made = amr(ns, "units", "init", "--master-key-file", env["AMR_MASTER_KEY_FILE"])
        assert made.returncode == 0, made.stderr
        # The unit came from the twin's factory; the store records it as
        # flashed (as `amr flash` would) and gives it keys of its own.
        info = json.loads(amr(ns, "info", "--port", ns.url, "--json").stdout)
        master = MasterKey.resolve(Path(env["AMR_MASTER_KEY_FILE"]))
        with Registry.open(env["AMR_REGISTRY"], master) as registry:
            fields = {k: info[k] for k in ("mac", "board", "chip")}
            record_flash(
                registry, "tech-1", app_version=info["firmware"], app_hash="0" * 64, **fields
            )
        done = amr(ns, "provision", "--port", ns.url, "--label-dir", str(root), "--json")
        assert done.returncode == 0, done.stderr
        ns.unit_id = json.loads(done.stdout)["unit_id"]
        yield ns


def test_pair_over_the_wire_lists_the_bond_and_is_audited(store: SimpleNamespace) -> None:
    result = amr(store, "pair", "--port", store.url, "--transport", store.sim.ble,
                 "--list", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "service mode asked over the wire" in result.stderr
    out = json.loads(result.stdout)
    assert out["unit_id"] == store.unit_id
    assert out["paired"].startswith("bonded")
    assert out["bonds"] == 1 and len(out["hosts"]) == 1
    assert all(len(h) == 8 and int(h, 16) >= 0 for h in out["hosts"])
    audit = amr(store, "audit", "list", "--unit", store.unit_id, "--json")
    rows = [row for row in json.loads(audit.stdout) if row["action"] == "pair"]
    assert len(rows) == 1 and rows[0]["actor"] == "tech-1"
    assert rows[0]["detail"] == {"opened": "wire", "bonds": 1}
    state = json.loads(amr(store, "units", "show", store.unit_id, "--json").stdout)
    assert state["state"] == "provisioned"  # an audit action, no transition

    # The wire sees the same table (the session stops the app, in service
    # mode or not, and hands the unit back to it).
    info = json.loads(amr(store, "info", "--port", store.url, "--json").stdout)
    assert info["bonds"] == 1
    log = sim_log(store.sim)  # a boot's lines come when it ends
    assert any("service mode: connectable" in line for line in log)
    assert any("link encrypted=1 authenticated=1 bonded=1" in line for line in log)


def test_gesture_then_clear_over_ble_leaves_no_bond(store: SimpleNamespace) -> None:
    at_rest(store.sim)
    assert control(store.sim, {"cmd": "service", "unit": "unit-1"})["ok"]
    result = amr(store, "pair", "--transport", store.sim.ble, "--unit", store.unit_id,
                 "--clear", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "maintenance gesture" in result.stderr
    out = json.loads(result.stdout)
    assert out["unit_id"] == store.unit_id
    assert out["cleared"] >= 1 and out["bonds"] == 0
    info = json.loads(amr(store, "info", "--port", store.url, "--json").stdout)
    assert info["bonds"] == 0


def test_wrong_keys_find_no_unit_to_pair_with(store: SimpleNamespace) -> None:
    # The twin factory's keys: the unit's generation before `amr provision`.
    stale = store.sim.units["unit-1"].known
    assert stale is not None
    bundle = store.root / "stale.bundle"
    write_bundle(bundle, [stale], PASS)
    at_rest(store.sim)
    assert control(store.sim, {"cmd": "service", "unit": "unit-1"})["ok"]
    result = amr(store, "pair", "--transport", store.sim.ble, "--bundle", str(bundle),
                 "--timeout", "6")  # fmt: skip
    assert result.returncode == EXIT_UNIT, result.stderr
    assert "not the unit's current keys" in result.stderr


def test_failures_a_person_causes_end_in_a_message(store: SimpleNamespace) -> None:
    nothing = amr(store, "pair", "--transport", "tcp-client:127.0.0.1:9", "--unit",
                  store.unit_id, "--timeout", "3")  # fmt: skip
    assert nothing.returncode == EXIT_RADIO, nothing.stderr
    unknown = amr(store, "pair", "--transport", store.sim.ble, "--unit", "00" * 8)
    assert unknown.returncode == 8, unknown.stderr  # not in the registry
    host, _, port = store.url.removeprefix("rfc2217://").partition(":")
    # Refused before the unit is touched.
    with socket.create_connection((host, int(port))):  # another program holds the port
        time.sleep(0.3)
        busy = amr(store, "pair", "--port", store.url, "--transport", store.sim.ble)
    assert busy.returncode == EXIT_UNIT and "busy" in busy.stderr, busy.stderr


def sim_log(sim: Sim) -> list[str]:
    return [line for boot in sim.units["unit-1"].unit.boots for line in boot.lines]
