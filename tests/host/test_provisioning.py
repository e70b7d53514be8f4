"""The unit side of provisioning, proof of keys, wipe and test mode, through
the Unit API over the wired link: a virtual unit's real serial port (RFC
2217), the raw REPL through mpremote's transport, the unmodified firmware.
Test presses go over the virtual radio to `amr listen --ack`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from listen_cli import amr_listen
from sim_control import control

from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.contract import WIRED_ONLY
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, derive_keys
from amrkit.twin.factory import TWIN_REGISTRY_SECRET
from amrkit.twin.sim import Sim
from amrkit.unit import KeyProofError, Unit, UnitError
from amrkit.unit.ble import BleLink
from amrkit.unit.wired import WiredLink

PASS = "provisioning test"
DEFAULTS = firmware_module("config").DEFAULTS
T = TypeVar("T")
# After a session the app boots again; edges while it boots are not seen.
BOOTED_S = load_board().wake_to_app_ms / 1000 + 0.3
# Long enough to hear a press and for the unit to hear the acknowledgement
# at its first retry, after the burst.
ACKED_S = str(DEFAULTS["burst_ms"] // 1000 + DEFAULTS["retry_first_s"] + 5)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Sim(1, load_board(), tmp_path_factory.mktemp("prov") / "fleet") as fleet:
        yield fleet


def over_wire(sim: Sim, work: Callable[[Unit], Awaitable[T]]) -> T:
    """Run `work` on the unit over its serial port: the session stops the
    app, and hands the unit back to it (a soft reboot) when it closes."""

    async def run() -> T:
        async with WiredLink(str(sim.units["unit-1"].announce()["serial"])) as link:
            return await work(Unit(link))

    return asyncio.run(run())


def rekeyed(n: int) -> KnownUnit:
    unit_id = hashlib.sha256(b"provisioning test unit %d" % n).digest()[:8]
    return KnownUnit(unit_id.hex(), derive_keys(TWIN_REGISTRY_SECRET, unit_id))


def provision(unit: Unit, known: KnownUnit, generation: int, **kw: Any) -> Any:
    return unit.provision(bytes.fromhex(known.unit), generation, known.keys, DEFAULTS, **kw)


def test_wired_only_commands_are_marked_in_the_table_and_never_sent_over_ble(sim: Sim) -> None:
    async def table(unit: Unit) -> tuple[str, str]:
        link = unit.link
        assert isinstance(link, WiredLink)
        marked = link._transport.exec("import amr.commands as c\nprint(c.wired_only())")
        # What the BLE control point runs: the same table, not over the wire.
        over_air = link._transport.exec(
            "import amr.commands as c\nprint(c.run('wipe', None, None, False)['error'])"
        )
        return marked.decode(), over_air.decode()

    marked, over_air = over_wire(sim, table)
    assert marked.strip() == repr(sorted(WIRED_ONLY))
    assert "wipe runs over the wired link only" in over_air

    async def ble() -> None:
        link = BleLink([], "tcp-client:127.0.0.1:9")  # never opened: nothing may leave
        for name in WIRED_ONLY:
            with pytest.raises(UnitError, match="wired link only"):
                await link.command(name, b"\x00")

    asyncio.run(ble())


def test_provision_proves_keys_and_refuses_an_old_generation(sim: Sim) -> None:
    factory = sim.units["unit-1"].known
    assert factory is not None
    new = rekeyed(2)

    async def work(unit: Unit) -> dict[str, Any]:
        info = await unit.info()
        assert info["provisioned"] and info["key_generation"] == 1
        hwm = info["state"]["counter_hwm"]
        assert (await unit.prove_keys(factory, 1))["proved"] is True
        with pytest.raises(
            KeyProofError, match=f"does not hold the keys of unit {factory.unit} generation 2"
        ):
            await unit.prove_keys(factory, 2)
        done = await provision(unit, new, 2)
        assert done["counter_hwm"] >= hwm  # the counters run on
        info = await unit.info()
        assert (info["unit_id"], info["key_generation"], info["config"]) == (new.unit, 2, "ok")
        assert info["keys"] == "present" and info["state"]["counter_hwm"] >= hwm
        await unit.prove_keys(new, 2)
        with pytest.raises(KeyProofError, match="does not hold the keys"):
            await unit.prove_keys(factory, 1)
        with pytest.raises(UnitError, match="key generation 2 is not above the unit's current 2"):
            await provision(unit, rekeyed(3), 2)
        with pytest.raises(ValueError, match="config field hold_ms"):
            await unit.provision(bytes(8), 3, new.keys, {**DEFAULTS, "hold_ms": 1})
        return info

    over_wire(sim, work)
    # The keys are in the unit's flash (nvs.json) and nowhere else of its files.
    keys = [k.hex() for k in (new.keys.enc, new.keys.id, new.keys.ack)]
    for path in sim.units["unit-1"].unit.directory.rglob("*"):
        if path.is_file() and path.name != "nvs.json":
            text = path.read_bytes().hex() + path.read_text(errors="replace")
            assert not any(k in text for k in keys), path
    lines = [line for b in sim.units["unit-1"].unit.boots for line in b.lines]
    assert not any(k in line for k in keys for line in lines)


def test_wipe_leaves_no_keys_and_keeps_the_counters(sim: Sim) -> None:
    async def work(unit: Unit) -> None:
        before = await unit.info()
        assert before["provisioned"]
        generation = before["key_generation"]
        hwm = before["state"]["counter_hwm"]
        wiped = await unit.wipe()
        assert wiped["wiped"] is True and wiped["counter_hwm"] == hwm
        info = await unit.info()
        assert info["provisioned"] is False and info["unit_id"] is None
        assert info["keys"] == "not provisioned" and info["state"]["counter_hwm"] == hwm
        with pytest.raises(KeyProofError, match=f"holds no keys.*generation {generation}"):
            await unit.prove_keys(rekeyed(2), generation)
        assert (await unit.self_test())["pass"] is False
        # A wiped unit takes any generation, and its counters go on from the mark.
        again = await provision(unit, rekeyed(4), 1)
        assert again["counter_hwm"] == hwm
        await unit.prove_keys(rekeyed(4), 1)

    over_wire(sim, work)


def test_test_mode_turns_an_alarm_into_a_test_press_until_it_ends(tmp_path: Path) -> None:
    # The unit's clock runs with the wall clock (no fast-forward of its
    # sleep), so that the test mode's minutes are the test's minutes.
    with Sim(1, load_board(), tmp_path / "fleet", speed=1.0) as sim:
        known = sim.units["unit-1"].known
        assert known is not None
        bundle = tmp_path / "rx.bundle"
        write_bundle(bundle, [known], PASS)

        async def start(unit: Unit) -> dict[str, Any]:
            with pytest.raises(ValueError, match="0 to 600"):
                await unit.test_mode(601)
            with pytest.raises(UnitError, match="at most 600 s"):
                await unit.run("test_mode", b"\x59\x02")  # 601, past the host's check
            await unit.test_mode(120)
            return await unit.info()

        info = over_wire(sim, start)
        assert 110 <= info["test_mode_s"] <= 120
        rx = tmp_path / "rx.sqlite"
        time.sleep(BOOTED_S)  # the tapper waits for the app to be up again
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        code, events, err = amr_listen(
            bundle, rx, PASS, "--transport", sim.ble, "--ack", "--duration", ACKED_S
        )
        assert code == 0, err
        kinds = [e["event"] for e in events]
        log = [line for b in sim.units["unit-1"].unit.boots for line in b.lines]
        assert "test_press" in kinds and "alert" not in kinds, (kinds, log[-20:])
        assert any("test press" in line and "reserved and persisted" in line for line in log)
        assert any("acknowledged by the receiver" in line for line in log), log[-10:]
        state = over_wire(sim, Unit.info)["state"]
        assert state["pending_tests"] == 0 and state["pending_alerts"] == 0

        # Test mode over (the clock moves on past it): an alarm is an alert again.
        assert control(sim, {"cmd": "time_jump", "unit": "unit-1", "ms": 180_000})["ok"]
        assert over_wire(sim, Unit.info)["test_mode_s"] == 0
        time.sleep(BOOTED_S)
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        code, events, err = amr_listen(
            bundle, rx, PASS, "--transport", sim.ble, "--ack", "--duration", ACKED_S
        )
        assert code == 0, err
        kinds = [e["event"] for e in events]
        assert "alert" in kinds and "test_press" not in kinds, kinds
