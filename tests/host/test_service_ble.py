"""Service mode over BLE on the twin: the maintenance gesture makes a unit
connectable; bleak, through the bumble backend, finds it by its token,
pairs with the passkey derived from its keys (LE Secure Connections) and
reads the Battery (0x180F) and Device Information (0x180A) services the
firmware serves. Nothing is readable without that pairing, the bond lives in
the unit's flash across sessions, and at rest the unit is not connectable."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bumble.keys import MemoryKeyStore
from click.testing import CliRunner
from sim_control import control

import amrkit
from amrkit.ble.bumble import bumble_scanner
from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.cli import EXIT_UNIT, main
from amrkit.paths import firmware_module
from amrkit.protocol import SERVICE_AD_PREFIX, KnownUnit
from amrkit.twin.sim import Sim
from amrkit.unit.ble import (
    BATTERY_LEVEL,
    Found,
    connect,
    find,
    read_unit,
    resolve,
    right_passkey,
)

PASS = "service test"
HOST = "C0:5E:4F:1C:E0:01"  # the store's host keeps one address, so its bonds hold


def unit_log(sim: Sim, name: str) -> list[str]:
    return [line for boot in sim.units[name].unit.boots for line in boot.lines]


def wait_for_log(sim: Sim, name: str, text: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if any(text in line for line in unit_log(sim, name)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never logged {text!r}: {unit_log(sim, name)[-8:]}")


def wait_asleep(sim: Sim, name: str) -> None:
    deadline = time.monotonic() + 60
    while sim.units[name].unit.awake_clock() is not None:  # an earlier session lingers
        assert time.monotonic() < deadline, f"{name} never went back to sleep"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Sim(2, load_board(), tmp_path_factory.mktemp("svc") / "fleet") as fleet:
        yield fleet


@asynccontextmanager
async def connected(
    sim: Sim, units: list[KnownUnit], **args: Any
) -> AsyncIterator[tuple[Found, BleakClient]]:
    """One of `units` found and connected (amrkit.unit.ble.connect), then let go."""
    hit, client = await connect(units, sim.ble, **args)
    try:
        yield hit, client
    finally:
        await client.disconnect()


def known(sim: Sim, name: str) -> KnownUnit:
    unit = sim.units[name].known
    assert unit is not None
    return unit


def test_battery_and_device_information_after_passkey_pairing(sim: Sim) -> None:
    assert control(sim, {"cmd": "battery", "unit": "unit-1", "mv": 2700})["ok"]
    assert control(sim, {"cmd": "service", "unit": "unit-1"})["ok"]
    units = [known(sim, "unit-1"), known(sim, "unit-2")]
    keystore = MemoryKeyStore()
    report = asyncio.run(read_unit(units, sim.ble, keystore=keystore, own_address=HOST))
    battery = firmware_module("battery")
    assert report["unit_id"] == known(sim, "unit-1").unit
    assert report["battery_pct"] == battery.percent(2700) < 100
    assert report["manufacturer"] == "AMR"
    assert report["model"] == "esp32c3-coin"
    assert report["firmware"] == amrkit.__version__
    assert report["hardware"] == "ESP32-C3"

    # The host comes back while the unit lingers in service mode: the bond,
    # which the firmware handed to its bond table in flash, encrypts the link
    # with no passkey asked.
    async def bonded_read() -> int:
        async with connected(sim, units, passkey=None, keystore=keystore, own_address=HOST) as (
            _,
            client,
        ):
            await client.pair()  # encrypts with the stored key
            return (await client.read_gatt_char(BATTERY_LEVEL))[0]

    assert asyncio.run(bonded_read()) == battery.percent(2700)
    wait_for_log(sim, "unit-1", "service mode closed (done)")
    # It stays for the next command a while after the host left, not for the
    # whole wait (the host came and went between two looks of the app).
    stamps = [(int(line.split("[")[1].split(" ms]")[0]), line) for line in unit_log(sim, "unit-1")]
    left = max(t for t, line in stamps if "host disconnected" in line)
    closed = max(t for t, line in stamps if "service mode closed (done)" in line)
    assert 9_000 <= closed - left < 12_000  # the 10 s linger, give or take a look
    # A later session is a new boot under a new resolvable private address:
    # the host resolves it with the IRK it got when bonding, and the unit
    # finds the bond in its flash.
    wait_asleep(sim, "unit-1")
    assert control(sim, {"cmd": "service", "unit": "unit-1"})["ok"]
    assert asyncio.run(bonded_read()) == battery.percent(2700)
    wait_asleep(sim, "unit-1")
    log = unit_log(sim, "unit-1")
    assert sum("link encrypted=1 authenticated=1 bonded=1" in line for line in log) == 3
    nvs = sim.units["unit-1"].unit.nvs()["amr"]
    assert {"b0", "b1"} & set(nvs), "no bond table in the unit's flash"
    energy = control(sim, {"cmd": "status", "unit": "unit-1"})["energy"]["ms"]
    assert energy["connected"] > 0


def test_nothing_is_readable_without_the_right_passkey(sim: Sim) -> None:
    assert control(sim, {"cmd": "service", "unit": "unit-2"})["ok"]
    unit = known(sim, "unit-2")

    def wrong(hit: Found) -> int:
        return (right_passkey(hit) + 1) % 1_000_000

    async def attempts() -> tuple[str, str, str]:
        async with connected(sim, [unit], passkey=None) as (_, client):
            with pytest.raises(BleakError) as unpaired:
                await client.read_gatt_char(BATTERY_LEVEL)
        async with connected(sim, [unit], passkey=wrong) as (_, client):
            with pytest.raises(BleakError) as refused:
                await client.pair()
        # Just Works gives an unauthenticated key: the unit drops the link.
        async with connected(sim, [unit], passkey=None) as (_, client):
            with pytest.raises(BleakError) as just_works:
                await client.pair()
                await client.read_gatt_char(BATTERY_LEVEL)
        return str(unpaired.value), str(refused.value), str(just_works.value)

    unpaired, refused, just_works = asyncio.run(attempts())
    assert "authentication" in unpaired.lower()
    assert "pair" in refused.lower()
    assert just_works
    # Three hosts that could not authenticate: the unit stops offering the
    # passkey to guessers and closes service mode.
    wait_for_log(sim, "unit-2", "service mode closed (3 hosts failed to pair)")
    assert any("encrypted=1 authenticated=0" in line for line in unit_log(sim, "unit-2"))


def test_amr_info_over_ble_from_the_command_line(sim: Sim, tmp_path: Path) -> None:
    bundle = tmp_path / "units.bundle"
    write_bundle(bundle, [known(sim, "unit-2")], PASS)
    env = {"AMR_BUNDLE_PASSPHRASE": PASS}
    wait_for_log(sim, "unit-2", "service mode closed")
    # No unit of the bundle is in service mode: a clear failure, not a hang.
    missing = CliRunner().invoke(
        main,
        ["info", "--transport", sim.ble, "--bundle", str(bundle), "--timeout", "2"],
        env=env,
    )
    assert missing.exit_code == EXIT_UNIT
    assert "service mode" in missing.output
    assert control(sim, {"cmd": "service", "unit": "unit-2"})["ok"]
    result = CliRunner().invoke(
        main, ["info", "--transport", sim.ble, "--bundle", str(bundle), "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["unit_id"] == known(sim, "unit-2").unit
    assert (
        report["board"] == "esp32c3-coin" and "loaded_mv" in report
    )  # the commands, as over serial


def test_at_rest_the_unit_is_not_connectable(sim: Sim) -> None:
    """Outside service mode every frame goes out non-connectable. (Checked on
    what the firmware asked its stack for: bumble's virtual controller
    reports every advertisement as connectable, whatever its type.)"""
    before = len(sim.units["unit-1"].unit.boots)
    assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
    end = time.monotonic() + 30
    while len(sim.units["unit-1"].unit.boots) == before and time.monotonic() < end:
        time.sleep(0.1)
    boots = sim.units["unit-1"].unit.boots
    adverts = [e for boot in boots for e in boot.events if e["kind"] == "advertise"]
    frames = [e for e in adverts if len(bytes.fromhex(e["data"])) == 31]
    assert any("alert" in line for line in boots[-1].lines), boots[-1].lines
    assert frames and not any(e["connectable"] for e in frames)
    # Connectable advertising happened in service mode only, with its own data.
    service = [e for e in adverts if e["connectable"]]
    assert service and all(bytes.fromhex(e["data"])[:2] == SERVICE_AD_PREFIX for e in service)


def test_battery_level_is_notified_to_a_paired_host(sim: Sim) -> None:
    unit = known(sim, "unit-2")
    wait_asleep(sim, "unit-2")
    assert control(sim, {"cmd": "battery", "unit": "unit-2", "mv": 3000})["ok"]
    assert control(sim, {"cmd": "service", "unit": "unit-2"})["ok"]
    battery = firmware_module("battery")

    async def watch() -> list[int]:
        levels: list[int] = []
        changed = asyncio.Event()

        def notified(_: Any, data: bytearray) -> None:
            levels.append(data[0])
            changed.set()

        async with connected(sim, [unit]) as (_, c):
            await c.pair()
            await c.start_notify(BATTERY_LEVEL, notified)
            await asyncio.to_thread(control, sim, {"cmd": "battery", "unit": "unit-2", "mv": 2600})
            await asyncio.wait_for(changed.wait(), 20)
        return levels

    assert asyncio.run(watch()) == [battery.percent(2600)]


def test_service_advertising_moves_to_a_new_token_and_address_and_shows_no_constant(
    sim: Sim,
) -> None:
    """Heard by a scanner on the radio while the unit waits for a host: a
    bare manufacturer structure (no flags, no service UUID) whose nonce and
    token change every few seconds, each time under a new address; only a
    key holder resolves any of them to the unit, and a host still pairs."""
    unit = known(sim, "unit-2")
    wait_asleep(sim, "unit-2")
    service_mode = firmware_module("service_mode")
    longest_s = (service_mode._ROTATE_MIN_MS + service_mode._ROTATE_SPREAD_MS) / 1000
    assert control(sim, {"cmd": "service", "unit": "unit-2"})["ok"]

    async def listen() -> dict[str, set[bytes]]:
        await find([unit], sim.ble)  # advertising for a host now
        heard: dict[str, set[bytes]] = {}

        def on_advert(device: BLEDevice, adv: AdvertisementData) -> None:
            if resolve(adv, [unit]) is None:
                return
            assert not adv.service_uuids and adv.local_name is None
            (company, data), *_ = adv.manufacturer_data.items()
            heard.setdefault(device.address, set()).add(company.to_bytes(2, "little") + data)

        scanner = BleakScanner(on_advert, backend=bumble_scanner(sim.ble))
        await scanner.start()
        # Until three addresses (two moves), at most two of the longest periods.
        deadline = asyncio.get_running_loop().time() + 2 * longest_s + 1
        while len(heard) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the third address's advertising, a few times
        await scanner.stop()
        return heard

    heard = asyncio.run(listen())
    assert len(heard) >= 3, heard  # addresses
    assert all(len(ads) == 1 for ads in heard.values())  # one nonce per address
    payloads = [next(iter(ads)) for ads in heard.values()]
    assert len({p[:4] for p in payloads}) == len(payloads)  # a new nonce each time
    # A host finds and pairs with the advertisement of the moment.
    report = asyncio.run(read_unit([unit], sim.ble))
    assert report["unit_id"] == unit.unit
    wait_for_log(sim, "unit-2", "service mode closed")
    wait_asleep(sim, "unit-2")
    # Only the AD header is constant: the advertisements as the firmware gave them.
    session = sim.units["unit-2"].unit.boots[-1]
    adverts = [
        bytes.fromhex(e["data"])
        for e in session.events
        if e["kind"] == "advertise" and e["connectable"]
    ]
    assert len(adverts) >= len(heard)
    assert {a[:2] for a in adverts} == {SERVICE_AD_PREFIX}
    assert all(len(a) == len(SERVICE_AD_PREFIX) + 12 for a in adverts)


def test_a_press_reaches_a_unit_awake_in_service_mode_and_the_alarm_wins(sim: Sim) -> None:
    """Awake time is real time: a hold made while the unit waits for a host
    reaches its pin as it happens, and the alarm takes the radio."""
    unit = known(sim, "unit-2")  # unit-1 has an alert on the air: it refuses service mode
    wait_asleep(sim, "unit-2")
    assert control(sim, {"cmd": "service", "unit": "unit-2"})["ok"]
    asyncio.run(find([unit], sim.ble))  # advertising for a host now
    assert control(sim, {"cmd": "press", "unit": "unit-2", "duration_ms": 2000})["ok"]
    wait_for_log(sim, "unit-2", "service mode closed (alarm)")
    log = unit_log(sim, "unit-2")
    closed = max(i for i, line in enumerate(log) if "service mode closed (alarm)" in line)
    assert any("reserved and persisted" in line for line in log[closed:])
