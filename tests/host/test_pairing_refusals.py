"""What pairing with a unit refuses, shown by a host of its own: a bumble
Device with its own PairingConfig and PairingDelegate (not the toolkit's
client), on the twin's radio, against units in service mode.

- A host that does not offer LE Secure Connections is refused by the unit's
  security manager (the production image's Secure Connections Only mode,
  which the twin's radio peer emulates): SMP error Authentication
  Requirements, no encrypted link. So is one asking for a key shorter than
  16 bytes (Encryption Key Size).
- On the stock stack, which has no such mode, a host asking for a 7-byte
  key gets one; the firmware sees its size and drops the link, and says why.
- The right passkey with Secure Connections and a 16-byte key is accepted
  (the control).
- A window that closed (no host within its time, or an alarm) leaves
  nothing to connect to; a host that connected but did not pair within the
  grace is dropped.
No refused host reads a characteristic."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from bumble import core, smp
from bumble.core import AdvertisingData, ProtocolError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport
from sim_control import control

from amrkit.boards import load_board
from amrkit.protocol import KnownUnit, service_passkey, service_token
from amrkit.twin.sim import Sim

IMAGE_BOARDS = Path(__file__).resolve().parents[2] / "firmware" / "image" / "boards"
BATTERY_LEVEL = core.UUID.from_16_bits(0x2A19)
HEARD_S = 30.0  # a unit in service mode advertises every 200 ms
# Advertising heard this soon after the scan starts is not taken: a unit
# moves to a new address as soon as a host leaves it, and a connection
# attempt to the address it just left would never complete.
SETTLE_S = 0.5
CONNECT_S = 5.0  # how long a host tries to reach a unit whose window closed
# How an operation on a link fails: an error from the peer, or the link dropped under it.
FAILURES = (core.BaseBumbleError, asyncio.CancelledError)


def unit_log(sim: Sim, name: str) -> list[str]:
    return [line for boot in sim.units[name].unit.boots for line in boot.lines]


def wait_for_log(sim: Sim, name: str, text: str, timeout_s: float = 150.0) -> list[str]:
    """The unit's log once it has `text`: a boot's lines come when it ends (the
    window closes 60 s after it opened when no host authenticated)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        log = unit_log(sim, name)
        if any(text in line for line in log):
            return log
        time.sleep(0.2)
    raise AssertionError(f"{name} never logged {text!r}: {unit_log(sim, name)[-8:]}")


def wait_asleep(sim: Sim, name: str) -> None:
    deadline = time.monotonic() + 60
    while sim.units[name].unit.awake_clock() is not None:
        assert time.monotonic() < deadline, f"{name} never went back to sleep"
        time.sleep(0.1)


def known(sim: Sim, name: str) -> KnownUnit:
    unit = sim.units[name].known
    assert unit is not None
    return unit


def open_service(sim: Sim, name: str) -> None:
    """The maintenance gesture on a unit at rest."""
    wait_asleep(sim, name)
    assert control(sim, {"cmd": "service", "unit": name})["ok"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Sim(5, load_board(), tmp_path_factory.mktemp("refusals") / "fleet") as fleet:
        yield fleet


class Keyboard(PairingDelegate):
    """A host that types the passkey the unit "displays"."""

    def __init__(self, passkey: int, max_key_size: int = 16) -> None:
        super().__init__(
            PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY,
            maximum_encryption_key_size=max_key_size,
        )
        self._passkey = passkey

    async def get_number(self) -> int:
        return self._passkey


@asynccontextmanager
async def host(sim: Sim) -> AsyncIterator[Device]:
    """A bumble host of its own on the twin's radio."""
    transport = await open_transport(sim.ble)
    try:
        device = Device.with_hci(
            "refusals", Address.generate_static_address(), transport.source, transport.sink
        )
        device.keystore = MemoryKeyStore()  # what the host keeps of a bond
        await device.power_on()
        yield device
    finally:
        await transport.close()


async def heard(device: Device, unit: KnownUnit) -> tuple[Address, int]:
    """The unit's address in service mode and the session's nonce, resolved
    from its advertising with the unit's key (protocol §10)."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[tuple[Address, int]] = loop.create_future()
    settled = loop.time() + SETTLE_S

    def advertisement(adv: Advertisement) -> None:
        field = adv.data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        if not isinstance(field, tuple) or found.done() or loop.time() < settled:
            return
        company, data = field
        nonce = struct.unpack("<I", struct.pack("<H", company) + data[:2])[0]
        if service_token(unit.keys.id, nonce) == data[2:]:
            found.set_result((adv.address, nonce))

    device.on(device.EVENT_ADVERTISEMENT, advertisement)
    await device.start_scanning(filter_duplicates=False)
    try:
        return await asyncio.wait_for(found, HEARD_S)
    finally:
        device.remove_listener(device.EVENT_ADVERTISEMENT, advertisement)
        await device.stop_scanning()


def pairing(device: Device, passkey: int, *, sc: bool = True, max_key_size: int = 16) -> None:
    device.pairing_config_factory = lambda _connection: PairingConfig(
        sc=sc, mitm=True, bonding=True, delegate=Keyboard(passkey, max_key_size)
    )


async def read_battery(connection: Connection) -> bytes:
    peer = Peer(connection)
    await peer.discover_services()
    await peer.discover_characteristics()
    (level,) = peer.get_characteristics_by_uuid(BATTERY_LEVEL)
    return bytes(await level.read_value())


async def refused_read(connection: Connection) -> str:
    """Why reading the battery level failed: it must fail. A unit that
    drops the link ends the attempt (bumble would wait out its 30 s GATT
    timeout for an answer on a link that is gone)."""
    if connection.handle not in connection.device.connections:
        return "the unit had dropped the link"
    ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connection.on(
        connection.EVENT_DISCONNECTION, lambda reason: ended.done() or ended.set_result(reason)
    )
    read = asyncio.ensure_future(read_battery(connection))
    await asyncio.wait((read, ended), return_when=asyncio.FIRST_COMPLETED)
    if not read.done():
        read.cancel()
        return f"the unit dropped the link (reason {ended.result():#x})"
    if read.cancelled():  # bumble cancels a request whose link went away
        return "the unit dropped the link under the read"
    if isinstance(read.exception(), FAILURES):
        return f"{type(read.exception()).__name__}: {read.exception()}"
    read.result()  # any other error is the test's own
    raise AssertionError("a refused host read the battery level")


async def leave(connection: Connection) -> None:
    """Disconnect, unless the unit already has (bumble would wait for ever)."""
    if connection.handle in connection.device.connections:
        await connection.disconnect()


async def third_refusal(device: Device, unit: KnownUnit) -> None:
    """A host that connects and leaves without pairing: the third
    unauthenticated host closes service mode at once (no 60 s wait)."""
    address, _ = await heard(device, unit)
    await leave(await device.connect(address))


async def attempt(device: Device, unit: KnownUnit) -> tuple[Connection, BaseException | None]:
    """Find the unit, connect and pair; the connection and how pairing failed, if it did."""
    address, _ = await heard(device, unit)
    connection = await device.connect(address)
    try:
        await connection.pair()
    except FAILURES as err:
        return connection, err
    return connection, None


def test_without_secure_connections_the_security_manager_refuses(sim: Sim) -> None:
    unit = known(sim, "unit-1")
    open_service(sim, "unit-1")

    async def run() -> list[tuple[BaseException | None, bool, str]]:
        results = []
        async with host(sim) as device:
            _, nonce = await heard(device, unit)
            passkey = service_passkey(unit.keys.id, nonce)
            # The right passkey each time: only what the host offers differs.
            for sc, max_key_size in ((False, 16), (True, 7)):
                pairing(device, passkey, sc=sc, max_key_size=max_key_size)
                connection, failure = await attempt(device, unit)
                encrypted = connection.is_encrypted
                why = await refused_read(connection)
                await leave(connection)
                results.append((failure, encrypted, why))
            await third_refusal(device, unit)
        return results

    (legacy, legacy_enc, legacy_read), (short, short_enc, short_read) = asyncio.run(run())
    assert isinstance(legacy, ProtocolError), legacy
    assert legacy.error_code == smp.ErrorCode.AUTHENTICATION_REQUIREMENTS
    assert isinstance(short, ProtocolError), short
    assert short.error_code == smp.ErrorCode.ENCRYPTION_KEY_SIZE
    assert not legacy_enc and not short_enc
    assert "AUTHENTICATION" in legacy_read.upper() and "AUTHENTICATION" in short_read.upper()
    log = wait_for_log(sim, "unit-1", "service mode closed (3 hosts failed to pair)")
    assert sum("host disconnected" in line for line in log) == 3
    assert not any("link encrypted=1" in line for line in log)  # no key was ever made


def test_a_key_shorter_than_16_bytes_is_refused_by_the_firmware(sim: Sim) -> None:
    """On the stock deployment (no SC-only mode in its stack) the key is
    negotiated down to what the host asks; the firmware refuses it."""
    unit = known(sim, "unit-2")
    wait_asleep(sim, "unit-2")
    device_side = sim.units["unit-2"].device
    assert device_side is not None
    device_side.sc_only = False  # read at the next boot: the stock stack
    open_service(sim, "unit-2")

    async def run() -> tuple[str, str]:
        async with host(sim) as device:
            _, nonce = await heard(device, unit)
            pairing(device, service_passkey(unit.keys.id, nonce), max_key_size=7)
            connection, _ = await attempt(device, unit)  # cut short, or not, by the drop
            first = await refused_read(connection)
            await leave(connection)
            # The host comes back with the bond it kept, if the drop left it
            # one: its key is still 7 bytes.
            address, _ = await heard(device, unit)
            connection = await device.connect(address)
            with suppress(FAILURES):  # no bond on one side or the other: the link stays plain
                await connection.encrypt()
            second = await refused_read(connection)
            await leave(connection)
            await third_refusal(device, unit)
            return first, second

    first, second = asyncio.run(run())
    assert first and second
    log = wait_for_log(sim, "unit-2", "host refused: key 7 bytes, 16 needed")
    assert any("encrypted=1 authenticated=1" in line and "key 7 bytes" in line for line in log)
    assert not any("key 16 bytes" in line for line in log)


def test_the_right_passkey_with_secure_connections_and_a_full_key_is_accepted(sim: Sim) -> None:
    unit = known(sim, "unit-3")
    open_service(sim, "unit-3")

    async def run() -> tuple[BaseException | None, bytes]:
        async with host(sim) as device:
            _, nonce = await heard(device, unit)
            pairing(device, service_passkey(unit.keys.id, nonce))
            connection, failure = await attempt(device, unit)
            level = await read_battery(connection)
            await connection.disconnect()
            return failure, level

    failure, level = asyncio.run(run())
    assert failure is None
    assert len(level) == 1 and 0 <= level[0] <= 100
    log = wait_for_log(sim, "unit-3", "link encrypted=1 authenticated=1")
    assert any("key 16 bytes" in line for line in log)
    assert not any("host refused" in line for line in log)


async def unreachable(device: Device, address: Address) -> bool:
    """Nothing at `address` takes a connection within CONNECT_S. (The wait
    is bumble's own: its virtual controller never completes a connection
    attempt it was told to cancel, so bumble's connect timeout would hang.)"""
    try:
        await asyncio.wait_for(device.connect(address, timeout=None), CONNECT_S)
    except TimeoutError:
        return True
    return False


async def dropped(connection: Connection) -> int:
    """The reason the link ends with."""
    ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connection.on(connection.EVENT_DISCONNECTION, ended.set_result)
    return await ended


def test_a_window_that_closed_with_no_host_is_not_connectable(sim: Sim) -> None:
    """A host that connects but does not pair is dropped after the grace;
    the window then closes for want of a host, and nothing answers at its address."""
    unit = known(sim, "unit-4")
    open_service(sim, "unit-4")

    async def run() -> bool:
        async with host(sim) as device:
            address, _ = await heard(device, unit)
            connection = await device.connect(address)
            await dropped(connection)  # the unit's pairing grace runs out (30 s)
            await asyncio.to_thread(wait_for_log, sim, "unit-4", "service mode closed (no host)")
            return await unreachable(device, address)

    assert asyncio.run(run())
    log = unit_log(sim, "unit-4")
    assert any("host dropped: no authenticated pairing" in line for line in log)
    assert not any("link encrypted=1" in line for line in log)


def test_a_window_closed_by_an_alarm_is_not_connectable(sim: Sim) -> None:
    unit = known(sim, "unit-5")
    open_service(sim, "unit-5")

    async def run() -> bool:
        async with host(sim) as device:
            address, _ = await heard(device, unit)
            connection = await device.connect(address)
            press = {"cmd": "press", "unit": "unit-5", "duration_ms": 2000}
            assert (await asyncio.to_thread(control, sim, press))["ok"]
            await dropped(connection)  # the alarm takes the radio
            await asyncio.to_thread(wait_for_log, sim, "unit-5", "service mode closed (alarm)")
            return await unreachable(device, address)

    assert asyncio.run(run())
    assert not any("link encrypted=1" in line for line in unit_log(sim, "unit-5"))


@pytest.mark.parametrize("board", sorted(IMAGE_BOARDS.glob("AMR_*")), ids=lambda p: p.name)
def test_every_production_image_is_secure_connections_only(board: Path) -> None:
    """What the twin's radio peer emulates for a frozen deployment (the
    option's name is checked against ESP-IDF's by test_image_recipe.py)."""
    lines = (board / "sdkconfig.board").read_text().splitlines()
    assert "CONFIG_BT_NIMBLE_SM_SC_ONLY=1" in lines
