"""The bleak scanner backend over bumble, against virtual buttons on a bumble link.

Everything goes through bleak's public API (`BleakScanner(..., backend=...)`);
the virtual button is a bumble device advertising the raw 31-byte AD payload,
non-connectable, from a random static address.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakError
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Device
from bumble.hci import Address
from checked_run import run

from amrkit.ble.bumble import (
    ENV_TRANSPORT,
    BumbleDeviceDetails,
    BumbleScanner,
    RadioThread,
    VirtualRadio,
    bumble_scanner,
    resolve_transport,
    to_advertisement_data,
)
from amrkit.ble.bumble.scanner import DEFAULT_TRANSPORT

PAYLOAD = bytes.fromhex("1eff2a0b873b86ff130c7ec055ce0e3bec787de5ca6d800d892f89d338f84c")
COMPANY = 0x0B2A
MFR = bytes.fromhex("873b86ff130c7ec055ce0e3bec787de5ca6d800d892f89d338f84c")
PAYLOAD2 = bytes.fromhex("1eff2a0b") + bytes(range(27))
WAIT_S = 3.0

Heard = tuple[BLEDevice, AdvertisementData]


class Inbox:
    """A detection callback that queues what it hears."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Heard] = asyncio.Queue()
        self.count = 0

    def __call__(self, device: BLEDevice, adv: AdvertisementData) -> None:
        self.count += 1
        self.queue.put_nowait((device, adv))

    async def first(
        self, match: Callable[[BLEDevice, AdvertisementData], bool], timeout: float = WAIT_S
    ) -> Heard:
        async def wait() -> Heard:
            while True:
                device, adv = await self.queue.get()
                if match(device, adv):
                    return device, adv

        return await asyncio.wait_for(wait(), timeout)


def has_payload(mfr: bytes) -> Callable[[BLEDevice, AdvertisementData], bool]:
    return lambda _device, adv: adv.manufacturer_data.get(COMPANY) == mfr


@pytest.fixture(autouse=True)
def _no_env_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TRANSPORT, raising=False)


def test_scanner_sees_virtual_button() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            button = await radio.beacon(PAYLOAD)
            inbox = Inbox()
            scanner = BleakScanner(detection_callback=inbox, backend=bumble_scanner(radio))
            assert scanner.backend_id == "BumbleScanner"
            started = time.monotonic()
            async with scanner:
                device, adv = await inbox.first(has_payload(MFR))
            assert time.monotonic() - started < WAIT_S
            assert adv.manufacturer_data == {COMPANY: MFR}
            assert isinstance(adv.rssi, int) and -127 < adv.rssi < 20
            assert adv.local_name is None and adv.service_uuids == [] and adv.tx_power is None
            assert device.address == button.address
            assert isinstance(device.details, BumbleDeviceDetails)
            assert device.details.address.is_static  # random static address
            (platform,) = adv.platform_data
            assert isinstance(platform, Advertisement)
            assert bytes(platform.data) == PAYLOAD
            devices = scanner.discovered_devices_and_advertisement_data
            assert devices[button.address][1].manufacturer_data == {COMPANY: MFR}

    run(main)


def test_payload_change_is_seen() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            button = await radio.beacon(PAYLOAD)
            inbox = Inbox()
            async with BleakScanner(inbox, backend=bumble_scanner(radio)):
                await inbox.first(has_payload(MFR))
                await button.set_data(PAYLOAD2)
                device, adv = await inbox.first(has_payload(PAYLOAD2[4:]))
                assert device.address == button.address
                assert adv.manufacturer_data == {COMPANY: bytes(range(27))}
                await button.stop()
                await asyncio.sleep(0.25)
                count = inbox.count
                await asyncio.sleep(0.35)
                assert inbox.count == count  # silent once the button stops advertising
                await button.start(PAYLOAD)
                await inbox.first(has_payload(MFR))

    run(main)


def test_scanner_stop_and_start() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            button = await radio.beacon(PAYLOAD)
            inbox = Inbox()
            scanner = BleakScanner(inbox, backend=bumble_scanner(radio))
            await scanner.start()
            with pytest.raises(BleakError):
                await scanner.start()
            await inbox.first(has_payload(MFR))
            await scanner.stop()
            await scanner.stop()  # idempotent
            count = inbox.count
            await asyncio.sleep(0.35)
            assert inbox.count == count  # no callbacks while stopped
            assert len(radio.link.controllers) == 1  # the scanner's controller is gone
            await scanner.start()
            device, _ = await inbox.first(has_payload(MFR))
            assert device.address == button.address
            assert list(scanner.discovered_devices_and_advertisement_data) == [button.address]
            await scanner.stop()
            # one report per advertising event: the virtual controller's fake
            # scan responses to non-scannable adverts are dropped
            while not inbox.queue.empty():
                (platform,) = inbox.queue.get_nowait()[1].platform_data
                assert not platform.is_scan_response

    run(main)


def test_discover_and_two_buttons() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            one = await radio.beacon(PAYLOAD)
            two = await radio.beacon(PAYLOAD2, address="C1:23:45:67:89:AB")
            found = await BleakScanner.discover(
                timeout=0.5, return_adv=True, backend=bumble_scanner(radio)
            )
            assert two.address == "C1:23:45:67:89:AB"
            assert found[one.address][1].manufacturer_data == {COMPANY: MFR}
            assert found[two.address][1].manufacturer_data == {COMPANY: PAYLOAD2[4:]}

    run(main)


def test_passive_scanning() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            button = await radio.beacon(PAYLOAD)
            inbox = Inbox()
            scanner = BleakScanner(inbox, scanning_mode="passive", backend=bumble_scanner(radio))
            async with scanner:
                device, _ = await inbox.first(has_payload(MFR))
                assert scanner_device(scanner).scanning_is_passive
            assert device.address == button.address

    run(main)


def scanner_device(scanner: BleakScanner) -> Device:
    backend = scanner._backend  # the BumbleScanner instance bleak created
    assert isinstance(backend, BumbleScanner) and backend.device is not None
    return backend.device


def test_transport_from_env_and_kwarg(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_transport() == DEFAULT_TRANSPORT == "usb:0"
    monkeypatch.setenv(ENV_TRANSPORT, "virtual:from-env")
    assert resolve_transport() == "virtual:from-env"
    assert resolve_transport("tcp-client:127.0.0.1:1") == "tcp-client:127.0.0.1:1"

    async def main() -> None:
        async with VirtualRadio("from-env") as radio, VirtualRadio("from-kwarg") as other:
            await radio.beacon(PAYLOAD)
            await other.beacon(PAYLOAD2)
            inbox = Inbox()
            async with BleakScanner(inbox, backend=BumbleScanner):  # env var
                await inbox.first(has_payload(MFR))
            inbox = Inbox()
            scanner = BleakScanner(inbox, backend=BumbleScanner, bumble={"transport": other.spec})
            async with scanner:  # bumble= keyword beats the env var
                _, adv = await inbox.first(lambda _d, _a: True)
            assert adv.manufacturer_data == {COMPANY: PAYLOAD2[4:]}

    run(main)


def test_borrowed_device_is_left_open() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            await radio.beacon(PAYLOAD)
            host = await radio.open_host("mine")
            inbox = Inbox()
            async with BleakScanner(inbox, backend=bumble_scanner(host.device)):
                await inbox.first(has_payload(MFR))
            assert not host.device.is_scanning
            assert len(radio.link.controllers) == 2  # still attached: not ours to close

    run(main)


def test_service_uuid_filter() -> None:
    async def main() -> None:
        async with VirtualRadio() as radio:
            await radio.beacon(PAYLOAD)
            # 16-bit UUID list [0x181a], then manufacturer data 0x0b2a: 01 02
            await radio.beacon(bytes.fromhex("03031a18") + bytes.fromhex("05ff2a0b0102"))
            inbox = Inbox()
            wanted = "0000181a-0000-1000-8000-00805f9b34fb"
            async with BleakScanner(inbox, [wanted], backend=bumble_scanner(radio)):
                _, adv = await inbox.first(lambda _d, _a: True)
                await asyncio.sleep(0.3)
            assert adv.service_uuids == [wanted]
            assert adv.manufacturer_data == {COMPANY: b"\x01\x02"}
            while not inbox.queue.empty():
                assert inbox.queue.get_nowait()[1].service_uuids == [wanted]

    run(main)


def test_unreachable_transport_is_bleak_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        scanner = BleakScanner(Inbox(), backend=bumble_scanner(f"tcp-client:127.0.0.1:{port}"))
        with pytest.raises(BleakBluetoothNotAvailableError, match="cannot open bumble transport"):
            await scanner.start()
        scanner = BleakScanner(Inbox(), backend=bumble_scanner("virtual:nobody"))
        with pytest.raises(BleakBluetoothNotAvailableError, match="no virtual radio"):
            await scanner.start()

    run(main)


def test_tcp_server_from_another_thread() -> None:
    threads = set(threading.enumerate())
    with RadioThread() as rt:
        server = rt.call(rt.radio.serve_tcp())
        button = rt.call(rt.radio.beacon(PAYLOAD))
        assert server.spec.startswith("tcp-client:127.0.0.1:")

        async def main() -> None:
            for _ in range(2):  # reconnecting gets a fresh controller
                inbox = Inbox()
                async with BleakScanner(inbox, backend=bumble_scanner(server.spec)):
                    device, adv = await inbox.first(has_payload(MFR))
                assert device.address == button.address
                assert adv.manufacturer_data == {COMPANY: MFR}
            await rt.acall(button.set_data(PAYLOAD2))
            inbox = Inbox()
            async with BleakScanner(inbox, backend=bumble_scanner(server.spec)):
                await inbox.first(has_payload(PAYLOAD2[4:]))

        run(main)
        time.sleep(0.05)

        async def controllers() -> int:
            return len(rt.radio.link.controllers)

        assert rt.call(controllers()) == 1  # only the button: clients' controllers retired
    assert set(threading.enumerate()) <= threads


SCAN_IN_CHILD = """
import asyncio, json, sys
from bleak import BleakScanner
from amrkit.ble.bumble import BumbleScanner

async def main():
    seen = asyncio.get_running_loop().create_future()
    def heard(device, adv):
        if not seen.done():
            seen.set_result({"address": device.address, "rssi": adv.rssi,
                             "mfr": {str(k): v.hex() for k, v in adv.manufacturer_data.items()}})
    async with BleakScanner(heard, backend=BumbleScanner):
        print(json.dumps(await asyncio.wait_for(seen, 5)))

asyncio.run(main())
"""


def test_tcp_server_from_another_process() -> None:
    with RadioThread() as rt:
        server = rt.call(rt.radio.serve_tcp())
        button = rt.call(rt.radio.beacon(PAYLOAD))
        env = {**os.environ, ENV_TRANSPORT: server.spec}
        child = subprocess.run(
            [sys.executable, "-c", SCAN_IN_CHILD],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        heard = json.loads(child.stdout)
        assert heard["address"] == button.address
        assert heard["mfr"] == {str(COMPANY): MFR.hex()}
        assert isinstance(heard["rssi"], int)


def test_advertisement_mapping() -> None:
    ad = (
        bytes.fromhex("020106")  # flags
        + bytes.fromhex("0509")
        + b"amr!"  # complete local name
        + bytes.fromhex("0308")
        + b"am"  # shortened name (complete wins)
        + bytes.fromhex("050312180f18")  # 16-bit UUIDs 0x1812, 0x180f
        + bytes.fromhex("0516d2fc4041")  # service data 0xfcd2 (BTHome)
        + bytes.fromhex("020af4")  # TX power -12 dBm
        + bytes.fromhex("05ff4c000102")  # Apple
        + bytes.fromhex("03ff2a0b")  # ours, empty body
    )
    adv = to_advertisement_data(Advertisement(address=_address(), rssi=-61, data_bytes=ad))
    assert adv.local_name == "amr!"
    assert adv.service_uuids == [
        "00001812-0000-1000-8000-00805f9b34fb",
        "0000180f-0000-1000-8000-00805f9b34fb",
    ]
    assert adv.service_data == {"0000fcd2-0000-1000-8000-00805f9b34fb": b"\x40\x41"}
    assert adv.tx_power == -12
    assert adv.manufacturer_data == {0x004C: b"\x01\x02", COMPANY: b""}
    assert adv.rssi == -61
    unknown = Advertisement(address=_address(), data_bytes=PAYLOAD)
    assert to_advertisement_data(unknown).rssi == -127  # RSSI not available
    assert AdvertisingData.from_bytes(PAYLOAD).ad_structures[0][1][:2] == b"\x2a\x0b"


def _address() -> Address:
    return Address("C0:11:22:33:44:55")
