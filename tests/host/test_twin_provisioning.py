"""Provisioning and wipe on the twin, through the unit's wired commands (as
its serial REPL runs them) with a power cut at every NVS write: the unit
boots with the old provisioning or the new, never a mix, never an older
generation brought back, and its counters never go back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.protocol import derive_keys
from amrkit.twin.factory import TWIN_REGISTRY_SECRET, provision, twin_unit_id
from amrkit.twin.gestures import Rng, trace
from amrkit.twin.power_cuts import FlashSlots
from amrkit.twin.unit import VirtualUnit
from amrkit.unit import FORCE, provisioning_record
from amrkit.unit.wired import command_source

BOARD = load_board()
CONFIG = firmware_module("config")
NEW_CONFIG = {**CONFIG.DEFAULTS, "heartbeat_s": 1800, "hold_ms": 2000}


def wired(unit: VirtualUnit, name: str, arg: bytes | None = None, **cut: Any) -> dict[str, Any]:
    """One wired command; {"power_cut": True} if the power went during it."""
    cut_hit, out = unit.wired(command_source(name, arg), **cut)
    return {"power_cut": True} if cut_hit else dict(json.loads(out))


def provisioning(unit: VirtualUnit) -> tuple[int, bytes, dict[str, int]] | None:
    """(generation, keys, config) the unit's flash holds, None if none."""
    prefix, kind = firmware_module("records").PROVISION
    store = firmware_module("store").SlotStore(FlashSlots(unit, prefix), kind)
    try:
        prov = firmware_module("provisioning").decode_provisioning(store.load())
    except firmware_module("store").StoreFault as fault:
        assert fault.reason == "missing", fault.reason  # erased, never damaged
        return None
    return prov.generation, prov.keys, prov.config


def counter_hwm(unit: VirtualUnit) -> int:
    prefix, kind = firmware_module("records").STATE
    store = firmware_module("store").SlotStore(FlashSlots(unit, prefix), kind)
    hwm: int = firmware_module("state").decode_state(store.load()).counter_hwm
    return hwm


def new_generation(generation: int) -> tuple[bytes, bytes]:
    """(provision's argument, forced, and the keys record) for a new unit id."""
    unit_id = hashlib.sha256(b"re-keyed %d" % generation).digest()[:8]
    keys = derive_keys(TWIN_REGISTRY_SECRET, unit_id)
    record = provisioning_record(unit_id, generation, keys, NEW_CONFIG)
    return bytes((FORCE,)) + record, unit_id + keys.enc + keys.id + keys.ack


def unit_with_pending_alert(directory: Path) -> VirtualUnit:
    """A provisioned unit (generation 1) whose alert nobody acknowledged."""
    unit = VirtualUnit(directory, BOARD)
    provision(unit)
    unit.power_on()
    unit.press(2_000, trace(Rng(3), [(0, 2000)]))
    unit.run_until(30_000)
    assert wired(unit, "info")["state"]["pending_alerts"] == 1
    return unit


def test_provision_refuses_pending_alerts_and_lower_generations_unless_forced(
    tmp_path: Path,
) -> None:
    unit = unit_with_pending_alert(tmp_path / "u")
    arg, _ = new_generation(2)
    refused = wired(unit, "provision", bytes((0,)) + arg[1:])
    assert "1 alerts or test presses are pending" in refused["error"]
    assert wired(unit, "info")["key_generation"] == 1
    done = wired(unit, "provision", arg)
    assert done["key_generation"] == 2 and done["provisioned"] is True
    info = wired(unit, "info")
    assert info["state"]["pending_alerts"] == 0 and info["key_generation"] == 2
    again = wired(unit, "provision", arg)
    assert "key generation 2 is not above the unit's current 2" in again["error"]


@pytest.mark.parametrize("cut_after", [False, True], ids=["before-commit", "after-commit"])
def test_power_cut_at_every_write_of_a_provision_leaves_the_old_or_the_new(
    tmp_path: Path, cut_after: bool
) -> None:
    arg, new_keys = new_generation(2)
    new = (2, new_keys, NEW_CONFIG)
    cuts = 0
    for k in range(1, 10):
        unit = unit_with_pending_alert(tmp_path / f"cut{k}")
        old = provisioning(unit)
        assert old is not None and old[0] == 1
        hwm = counter_hwm(unit)
        reply = wired(unit, "provision", arg, cut_at_commit=unit.commits + k, cut_after=cut_after)
        if "power_cut" not in reply:
            assert reply["key_generation"] == 2
            break
        cuts += 1
        boot = unit.power_on()
        assert not any("FAULT" in line for line in boot.lines), boot.lines
        assert provisioning(unit) in (old, new)
        assert counter_hwm(unit) >= hwm
        info = wired(unit, "info")
        assert info["provisioned"] and info["config"] == "ok" and info["keys"] == "present"
    assert cuts == 2  # the counter state (pending alert dropped, forced), then the record
    assert provisioning(unit) == new


@pytest.mark.parametrize("cut_after", [False, True], ids=["before-commit", "after-commit"])
def test_power_cut_at_every_write_of_a_wipe_leaves_it_provisioned_or_wiped(
    tmp_path: Path, cut_after: bool
) -> None:
    bonds = firmware_module("bonds")
    store = firmware_module("store")
    prefix, kind = firmware_module("records").BONDS
    cuts = 0
    for k in range(1, 12):
        unit = unit_with_pending_alert(tmp_path / f"cut{k}")
        arg, _ = new_generation(2)
        assert wired(unit, "provision", arg)["key_generation"] == 2  # slot 1; generation 1 in 0
        table = bonds.encode_bonds([(2, b"host", b"secret")])
        unit.write_nvs(
            "amr",
            {
                prefix + "0": store.pack_record(kind, 1, table),
                prefix + "1": store.pack_record(kind, 2, table),
            },
        )
        arg, _ = new_generation(3)  # an alert pending again, under generation 2
        unit.power_on()
        unit.press(unit.clock_ms + 1_000, trace(Rng(5), [(0, 2000)]))
        unit.run_until(unit.clock_ms + 30_000)
        current = provisioning(unit)
        assert current is not None and current[0] == 2
        hwm = counter_hwm(unit)
        reply = wired(unit, "wipe", cut_at_commit=unit.commits + k, cut_after=cut_after)
        if "power_cut" not in reply:
            assert reply["wiped"] is True and reply["counter_hwm"] == hwm
            break
        cuts += 1
        boot = unit.power_on()
        after = provisioning(unit)
        assert after in (current, None)  # generation 1 never comes back
        faulted = any("FAULT" in line for line in boot.lines)
        assert faulted == (after is None), boot.lines
        assert counter_hwm(unit) >= hwm
    # Two erases of the provisioning, the pending alert, two of the bonds.
    assert cuts == 5
    info = wired(unit, "info")
    assert info["provisioned"] is False and info["keys"] == "not provisioned"
    assert info["state"]["pending_alerts"] == 0 and info["state"]["counter_hwm"] == hwm
    assert info["bonds"] == 0
    assert "no keys" in wired(unit, "challenge", bytes(16))["error"]
    assert twin_unit_id(unit).hex() not in json.dumps(info)
