"""The bleak client backend over bumble, against a bumble GATT peripheral on a virtual radio.

Everything on the client side goes through bleak's public API
(`BleakScanner(..., backend=...)`, `BleakClient(..., backend=...)`). The
peripheral advertises connectable from a random static address, displays a
fixed passkey, and wants MITM: it refuses Just Works.
"""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak.uuids import normalize_uuid_16
from bumble.device import Connection, Device
from bumble.gatt import (
    GATT_BATTERY_LEVEL_CHARACTERISTIC,
    GATT_BATTERY_SERVICE,
    GATT_DEVICE_INFORMATION_SERVICE,
    GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC,
    GATT_MODEL_NUMBER_STRING_CHARACTERISTIC,
    Characteristic,
    CharacteristicValue,
    Service,
)
from bumble.hci import Address
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from checked_run import run

from amrkit.ble.bumble import (
    ENV_TRANSPORT,
    BumbleClient,
    RadioThread,
    VirtualBeacon,
    VirtualRadio,
    bumble_client,
    bumble_scanner,
)

PASSKEY = 314159
WRONG_PASSKEY = 271828
OWN_ADDRESS = "D0:0D:1E:55:B0:0D"
BATTERY_SERVICE = normalize_uuid_16(0x180F)
BATTERY_LEVEL = normalize_uuid_16(0x2A19)
DEVICE_INFO = normalize_uuid_16(0x180A)
MANUFACTURER = normalize_uuid_16(0x2A29)
MODEL = normalize_uuid_16(0x2A24)
WRITABLE = "a3c8f5e2-0d4b-4c1e-9f6a-2b7d8e9f0a1b"
# flags, 16-bit service UUIDs [0x180f], complete local name
AD = bytes.fromhex("020106") + bytes.fromhex("03030f18") + bytes.fromhex("0709") + b"amr-pb"
WAIT_S = 2.0


@pytest.fixture(autouse=True)
def _no_env_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TRANSPORT, raising=False)


class DisplayOnly(PairingDelegate):
    """Shows PASSKEY; refuses Just Works, since the peripheral wants MITM protection."""

    def __init__(self) -> None:
        super().__init__(PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)

    async def generate_passkey(self) -> int:
        return PASSKEY

    async def confirm(self, auto: bool = False) -> bool:
        return False  # only Just Works asks a display-only device to confirm


class Peripheral:
    """A bumble GATT server advertising connectable on the radio."""

    def __init__(self, beacon: VirtualBeacon) -> None:
        self.beacon = beacon
        self.device: Device = beacon.host.device
        self.writes: asyncio.Queue[bytes] = asyncio.Queue()
        P = Characteristic.Properties
        self.battery = Characteristic(
            GATT_BATTERY_LEVEL_CHARACTERISTIC,
            P.READ | P.NOTIFY,
            "READABLE,READ_REQUIRES_AUTHENTICATION",
            bytes([87]),
        )
        self.writable = Characteristic(
            WRITABLE,
            P.READ | P.WRITE | P.WRITE_WITHOUT_RESPONSE,
            "READABLE,WRITEABLE",
            CharacteristicValue(read=lambda _conn: self.value, write=self._on_write),
        )
        self.value = b""
        self.device.add_services(
            [
                Service(GATT_BATTERY_SERVICE, [self.battery]),
                Service(
                    GATT_DEVICE_INFORMATION_SERVICE,
                    [
                        Characteristic(
                            GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC,
                            P.READ,
                            "READABLE,READ_REQUIRES_ENCRYPTION",
                            b"AMR Lab",
                        ),
                        Characteristic(
                            GATT_MODEL_NUMBER_STRING_CHARACTERISTIC,
                            P.READ,
                            "READABLE,READ_REQUIRES_ENCRYPTION",
                            b"PB-1",
                        ),
                    ],
                ),
                Service("9b1f0000-6c2d-4e5f-8a7b-0c1d2e3f4a5b", [self.writable]),
            ]
        )
        self.device.pairing_config_factory = lambda _conn: PairingConfig(
            sc=True, mitm=True, bonding=True, delegate=DisplayOnly()
        )

    @classmethod
    async def start(cls, radio: VirtualRadio) -> Peripheral:
        return cls(await radio.beacon(AD, connectable=True, name="amr-peripheral"))

    def _on_write(self, _conn: Connection, value: bytes) -> None:
        self.value = value
        self.writes.put_nowait(value)

    @property
    def address(self) -> str:
        return self.beacon.address

    @property
    def connection(self) -> Connection:
        (connection,) = self.device.connections.values()
        return connection

    async def notify(self, level: int) -> None:
        await self.device.notify_subscribers(self.battery, bytes([level]))


async def find(radio: VirtualRadio) -> BLEDevice:
    """The peripheral, as bleak's scanner reports it."""
    found = await BleakScanner.find_device_by_filter(
        lambda _device, adv: BATTERY_SERVICE in adv.service_uuids,
        timeout=WAIT_S,
        backend=bumble_scanner(radio.spec),
    )
    assert found is not None
    return found


def test_scan_connect_and_discover() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            device = await find(radio)
            assert device.address == peripheral.address
            assert device.name == "amr-pb"
            client = BleakClient(device, backend=bumble_client(radio.spec), timeout=WAIT_S)
            assert client.backend_id == "BumbleClient"
            async with client:
                assert client.is_connected
                assert client.name == "amr-pb"
                assert client.mtu_size == 517
                battery = client.services.get_service(BATTERY_SERVICE)
                info = client.services.get_service(DEVICE_INFO)
                assert battery is not None and info is not None
                (level,) = battery.characteristics
                assert level.uuid == BATTERY_LEVEL
                assert level.properties == ["read", "notify"]
                (cccd,) = level.descriptors
                assert cccd.uuid == normalize_uuid_16(0x2902)
                assert {c.uuid for c in info.characteristics} == {MANUFACTURER, MODEL}
                writable = client.services.get_characteristic(WRITABLE)
                assert writable is not None
                assert writable.properties == ["read", "write-without-response", "write"]
                assert writable.max_write_without_response_size == 514
            assert not client.is_connected

    run(main)


def test_read_needs_pairing() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            await Peripheral.start(radio)
            device = await find(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(device, backend=backend, passkey=PASSKEY) as client:
                with pytest.raises(
                    BleakGATTProtocolError, match="Insufficient Authentication"
                ) as err:
                    await client.read_gatt_char(BATTERY_LEVEL)
                assert err.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION
                assert any("pair()" in note for note in err.value.__notes__)
                with pytest.raises(BleakError, match="Insufficient Encryption"):
                    await client.read_gatt_char(MANUFACTURER)
                await client.pair()
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
                assert await client.read_gatt_char(MANUFACTURER) == bytearray(b"AMR Lab")
                assert await client.read_gatt_char(MODEL) == bytearray(b"PB-1")

    run(main)


def test_wrong_passkey() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(peripheral.address, backend=backend, passkey=PASSKEY) as client:
                with pytest.raises(BleakError, match="passkey rejected") as err:
                    await client.pair(passkey=WRONG_PASSKEY)
                assert str(err.value).startswith(f"pairing with {peripheral.address} failed")
                with pytest.raises(BleakError, match="Insufficient Authentication"):
                    await client.read_gatt_char(BATTERY_LEVEL)
                with pytest.raises(BleakError, match="Insufficient Encryption"):
                    await client.read_gatt_char(MANUFACTURER)
                assert client.is_connected

    run(main)


def test_just_works_is_refused() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(peripheral.address, backend=backend) as client:
                with pytest.raises(BleakError, match="refused Just Works"):
                    await client.pair()
                with pytest.raises(BleakError, match="Insufficient Authentication"):
                    await client.read_gatt_char(BATTERY_LEVEL)

    run(main)


def test_passkey_callable() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            asked: list[str] = []

            async def ask() -> int | None:
                asked.append("passkey")
                return PASSKEY

            async def refuse() -> int | None:
                return None

            backend = bumble_client(radio.spec)
            client = BleakClient(peripheral.address, backend=backend, passkey=refuse)
            async with client:
                with pytest.raises(BleakError, match="no passkey was entered"):
                    await client.pair()
            # a bumble peripheral keeps a failed pairing session until the link drops
            await peripheral.beacon.start()
            async with client:
                await client.pair(passkey=ask)
                assert asked == ["passkey"]
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])

    run(main)


def test_notify() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            device = await find(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(device, backend=backend, passkey=PASSKEY, pair=True) as client:
                heard: asyncio.Queue[tuple[str, bytearray]] = asyncio.Queue()
                await client.start_notify(
                    BATTERY_LEVEL, lambda char, data: heard.put_nowait((char.uuid, data))
                )
                await peripheral.notify(42)
                uuid, data = await asyncio.wait_for(heard.get(), WAIT_S)
                assert uuid == BATTERY_LEVEL
                assert isinstance(data, bytearray) and data == bytearray([42])
                assert await client.read_gatt_char(BATTERY_LEVEL, use_cached=True) == data
                await client.stop_notify(BATTERY_LEVEL)
                await peripheral.notify(41)
                # nothing was sent: it would have arrived before the read's response
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
                assert heard.empty()

    run(main)


def test_write_with_and_without_response() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(peripheral.address, backend=backend) as client:
                await client.write_gatt_char(WRITABLE, b"with", response=True)
                assert peripheral.value == b"with"  # the response came after the write
                await client.write_gatt_char(WRITABLE, bytearray(b"without"), response=False)
                assert await asyncio.wait_for(peripheral.writes.get(), WAIT_S) == b"with"
                assert await asyncio.wait_for(peripheral.writes.get(), WAIT_S) == b"without"
                assert await client.read_gatt_char(WRITABLE) == bytearray(b"without")

    run(main)


def test_disconnects() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            dropped = asyncio.Event()
            client = BleakClient(
                peripheral.address,
                lambda _client: dropped.set(),
                backend=bumble_client(radio.spec),
                passkey=PASSKEY,
            )
            await client.connect()
            assert len(radio.link.controllers) == 2  # the peripheral's and the client's
            seen_as = peripheral.connection.peer_address
            with pytest.raises(BleakError, match="already connected"):
                await client.connect()
            await peripheral.connection.disconnect()
            await asyncio.wait_for(dropped.wait(), WAIT_S)
            assert not client.is_connected
            with pytest.raises(BleakError, match="not connected"):
                await client.read_gatt_char(BATTERY_LEVEL)
            await client.disconnect()  # harmless once the peer has dropped the link
            assert len(radio.link.controllers) == 1  # the client's host is gone

            await peripheral.beacon.start()  # bumble stops advertising once connected
            dropped.clear()
            await client.connect()  # again, without disconnect() after the drop
            assert peripheral.connection.peer_address == seen_as  # same address: bonds hold
            await client.disconnect()
            assert dropped.is_set()
            assert not client.is_connected
            assert len(radio.link.controllers) == 1

    run(main)


def test_connect_and_pair() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            device = await find(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(device, backend=backend, pair=True, passkey=PASSKEY) as client:
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
            client = BleakClient(device, backend=backend, pair=True, passkey=WRONG_PASSKEY)
            await peripheral.beacon.start()
            with pytest.raises(BleakError, match="passkey rejected"):
                await client.connect()
            assert not client.is_connected
            assert len(radio.link.controllers) == 1  # a failed connect leaves nothing behind

    run(main)


def test_bond_is_reused_and_unpair_forgets_it() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            keystore = MemoryKeyStore()
            backend = bumble_client(radio.spec)
            client = BleakClient(
                peripheral.address,
                backend=backend,
                pair=True,
                passkey=PASSKEY,
                keystore=keystore,
                own_address=OWN_ADDRESS,
            )
            async with client:
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
            assert [name for name, _ in await keystore.get_all()] == [peripheral.address]

            # the peripheral knows the bond by our address: another one finds none
            await peripheral.beacon.start()
            client = BleakClient(peripheral.address, backend=backend, keystore=keystore)
            async with client:
                with pytest.raises(BleakError, match="stored bond was refused"):
                    await client.pair()

            # no passkey this time: the bond encrypts the link, and it stays authenticated
            await peripheral.beacon.start()
            client = BleakClient(
                peripheral.address, backend=backend, keystore=keystore, own_address=OWN_ADDRESS
            )
            async with client:
                await client.pair()
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
                await client.unpair()
                assert not client.is_connected
            assert await keystore.get_all() == []
            assert len(radio.link.controllers) == 1

    run(main)


def test_services_filter() -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            backend = bumble_client(radio.spec)
            async with BleakClient(
                peripheral.address, services=["180f"], backend=backend
            ) as client:
                assert [s.uuid for s in client.services] == [BATTERY_SERVICE]

    run(main)


def test_transport_from_env_and_kwarg(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with VirtualRadio("client") as radio:
            peripheral = await Peripheral.start(radio)
            monkeypatch.setenv(ENV_TRANSPORT, radio.spec)
            async with BleakClient(peripheral.address, backend=BumbleClient) as client:
                assert client.is_connected
            monkeypatch.setenv(ENV_TRANSPORT, "virtual:nowhere")
            with pytest.raises(BleakBluetoothNotAvailableError, match="no virtual radio"):
                await BleakClient(peripheral.address, backend=BumbleClient).connect()
            await peripheral.beacon.start()
            client = BleakClient(
                peripheral.address, backend=BumbleClient, bumble={"transport": radio}
            )
            async with client:  # the bumble= keyword beats the env var
                assert client.is_connected

    run(main)


def test_addresses_and_timeout() -> None:
    def peer(address: str) -> Address:
        backend = BleakClient(address, backend=BumbleClient)._backend
        assert isinstance(backend, BumbleClient)
        return backend._peer

    assert peer("C1:23:45:67:89:AB").is_random
    assert peer("C1:23:45:67:89:AB").is_static
    assert peer("00:23:45:67:89:AB/P").is_public
    with pytest.raises(BleakError, match="not a Bluetooth address"):
        peer("C1:23:45")

    async def main() -> None:
        async with VirtualRadio("client") as radio:  # nobody advertises
            backend = bumble_client(radio.spec)
            client = BleakClient("C1:23:45:67:89:AB", backend=backend, timeout=0.2)
            with pytest.raises(TimeoutError, match=r"timed out after 0\.2 s"):
                await client.connect()
            assert not client.is_connected
            assert not radio.link.controllers  # the client's host is closed again

    run(main)


def test_over_tcp_from_another_thread() -> None:
    with RadioThread() as rt:
        server = rt.call(rt.radio.serve_tcp())
        peripheral = rt.call(Peripheral.start(rt.radio))

        async def main() -> None:
            backend = bumble_client(server.spec)
            client = BleakClient(peripheral.address, backend=backend, passkey=PASSKEY, pair=True)
            async with client:
                assert await client.read_gatt_char(MANUFACTURER) == bytearray(b"AMR Lab")

        run(main)

        async def controllers_left() -> int:
            for _ in range(100):  # until the server has seen the client's socket close
                if len(rt.radio.link.controllers) == 1:
                    break
                await asyncio.sleep(0.01)
            return len(rt.radio.link.controllers)

        assert rt.call(controllers_left()) == 1  # only the peripheral's
