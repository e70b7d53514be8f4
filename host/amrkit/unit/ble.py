"""A unit over BLE in service mode, through bleak's public API.

A unit in service mode advertises a token that only a holder of its keys can
resolve (protocol §10), so the host finds *its* unit among others although no
unit carries a static identifier. While it waits for a host the unit moves to
a new token and address every few seconds: a host that connects to the
address it heard just as the unit moved on finds it again and retries. The
host then pairs with LE Secure Connections, typing the passkey it derives
from the same keys, runs the service commands through the unit's control
point, and reads the standard Battery and Device Information services any
BLE tool reads. Pairing goes through the bumble backend (amrkit.ble.bumble),
which takes the passkey; the same code runs on the twin's virtual radio and
on a USB HCI dongle.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakError
from bleak.uuids import normalize_uuid_16
from bumble.keys import KeyStore

from amrkit.ble import transport_trouble
from amrkit.ble.bumble import bumble_client, bumble_scanner
from amrkit.contract import ARG_SEPARATOR, CHUNK_LAST, CONTROL_POINT_UUID, WIRED_ONLY
from amrkit.protocol import RID_LENGTH, KnownUnit, service_passkey, service_token
from amrkit.unit import RadioUnavailable, UnitError, decode_reply

BATTERY_LEVEL = normalize_uuid_16(0x2A19)
# A connection completes at the unit's next advertising event (every 200 ms)
# when the unit is still there; one that has not within this long went to
# an address the unit left.
CONNECT_ATTEMPT_S = 5.0
DEVICE_INFO_FIELDS = {
    "manufacturer": normalize_uuid_16(0x2A29),
    "model": normalize_uuid_16(0x2A24),
    "firmware": normalize_uuid_16(0x2A26),
    "hardware": normalize_uuid_16(0x2A27),
}


class PairingError(UnitError):
    """The unit was found but pairing with the passkey from its keys failed:
    the keys (or the passkey) are not the unit's."""


@dataclass
class Found:
    device: BLEDevice
    unit: KnownUnit
    nonce: int  # of this service session: the passkey depends on it
    rssi: int


def resolve(adv: AdvertisementData, units: Iterable[KnownUnit]) -> tuple[KnownUnit, int] | None:
    """The unit whose service-mode advertisement this is, if it is one of
    ours, and the session's nonce.

    bleak splits manufacturer data into a company id and the rest; in ours
    those first two bytes are simply the low half of the nonce.
    """
    for company, data in adv.manufacturer_data.items():
        if len(data) != 2 + RID_LENGTH:  # the nonce's high half, then the token
            continue
        nonce = struct.unpack("<I", struct.pack("<H", company) + data[:2])[0]
        for unit in units:
            if service_token(unit.keys.id, nonce) == data[2:]:
                return unit, nonce
    return None


def select(units: list[KnownUnit], unit_id: str | None) -> list[KnownUnit]:
    """`units`, or only the one whose id is `unit_id` (hex, any case): none if
    it is not among them."""
    if unit_id is None:
        return units
    return [u for u in units if u.unit == unit_id.lower()]


async def find(units: list[KnownUnit], transport: str, timeout_s: float = 30.0) -> Found:
    """The first of `units` heard in service mode."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[Found] = loop.create_future()

    def heard(device: BLEDevice, adv: AdvertisementData) -> None:
        hit = resolve(adv, units)
        if hit is not None and not found.done():
            found.set_result(Found(device, hit[0], hit[1], adv.rssi))

    scanner = BleakScanner(heard, backend=bumble_scanner(transport))
    try:
        await scanner.start()
    except BleakBluetoothNotAvailableError as err:
        raise RadioUnavailable(transport_trouble(transport, err)) from err
    try:
        return await asyncio.wait_for(found, timeout_s)
    except TimeoutError:
        raise UnitError(
            f"no unit whose keys were given was heard in service mode within {timeout_s:.0f} s: "
            "open service mode on the unit (the maintenance gesture) and try again; if it "
            "is open, these are not the unit's current keys"
        ) from None
    finally:
        await scanner.stop()


def right_passkey(hit: Found) -> int:
    """The passkey of the service session `hit` heard."""
    return service_passkey(hit.unit.keys.id, hit.nonce)


async def connect(
    units: list[KnownUnit],
    transport: str,
    timeout_s: float = 30.0,
    passkey: Callable[[Found], int] | None = right_passkey,
    **client_args: Any,
) -> tuple[Found, BleakClient]:
    """The first of `units` heard in service mode, connected (not paired):
    with `passkey(hit)` for the pairing, or none (Just Works only).

    A connection to an address the unit has just left never completes:
    after CONNECT_ATTEMPT_S the host finds the unit again, until timeout_s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        hit = await find(units, transport, max(end - loop.time(), 0.1))
        args = dict(client_args)
        if passkey is not None:
            args["passkey"] = passkey(hit)
        client = BleakClient(
            hit.device, backend=bumble_client(transport), timeout=timeout_s, **args
        )
        try:
            async with asyncio.timeout(min(CONNECT_ATTEMPT_S, max(end - loop.time(), 0.1))):
                await client.connect()
            return hit, client
        except (TimeoutError, BleakError) as err:
            if loop.time() >= end:
                raise UnitError(
                    f"unit {hit.unit.unit} was heard in service mode but could not be "
                    f"connected to within {timeout_s:.0f} s: {err or 'timed out'}"
                ) from err


class BleLink:
    """A unit in service mode over BLE: the first of `units` heard, paired
    with the passkey its keys give, its service commands written to the
    control point and answered by notification.

    Pairs only when the link is not already encrypted with a bond from
    `keystore` (bumble's; in memory unless given). A unit keeps a bond under
    the host's address: pass the same `own_address` to use it again."""

    def __init__(
        self,
        units: list[KnownUnit],
        transport: str,
        timeout_s: float = 30.0,
        keystore: KeyStore | None = None,
        own_address: str | None = None,
    ) -> None:
        self._units = units
        self._transport = transport
        self._timeout_s = timeout_s
        self._keystore = keystore
        self._own_address = own_address
        self.found: Found | None = None
        self._client: BleakClient | None = None
        self._reply = bytearray()
        self._next = 0  # index of the reply chunk expected next
        self._done: asyncio.Future[bytes] | None = None

    @property
    def name(self) -> str:
        return f"unit {self.found.unit.unit}" if self.found else "a unit over BLE"

    async def __aenter__(self) -> BleLink:
        self.found, self._client = await connect(
            self._units,
            self._transport,
            self._timeout_s,
            keystore=self._keystore,
            own_address=self._own_address,
        )
        try:
            try:
                await self._client.pair()
            except BleakError as err:
                raise PairingError(
                    f"{self.name} refused pairing (LE Secure Connections, passkey from its "
                    f"keys): {err}; the keys are not the unit's current ones?"
                ) from err
            with self._errors("subscribing to the control point"):
                await self._client.start_notify(CONTROL_POINT_UUID, self._on_chunk)
        except BaseException:
            await self._client.disconnect()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.disconnect()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except BleakError as err:
            raise UnitError(f"{self.name} over BLE, {what}: {err}") from err

    def _client_open(self) -> BleakClient:
        if self._client is None:
            raise RuntimeError("open the link with `async with` first")
        return self._client

    async def command(self, name: str, arg: bytes | None = None) -> dict[str, Any]:
        if name in WIRED_ONLY:  # refused before anything leaves the host
            raise UnitError(
                f"{name} runs over the wired link only (the store's jig), never over BLE: "
                "connect the unit by cable (--port)"
            )
        client = self._client_open()
        self._reply, self._next = bytearray(), 0
        self._done = asyncio.get_running_loop().create_future()
        request = name.encode() if arg is None else name.encode() + bytes((ARG_SEPARATOR,)) + arg
        with self._errors(name):
            await client.write_gatt_char(CONTROL_POINT_UUID, request, response=True)
        try:
            data = await asyncio.wait_for(self._done, self._timeout_s)
        except TimeoutError:
            raise UnitError(
                f"{self.name} did not answer {name} within {self._timeout_s:.0f} s"
            ) from None
        return decode_reply(self.name, name, data)

    def _on_chunk(self, _characteristic: Any, value: bytearray) -> None:
        done = self._done
        if done is None or done.done() or not value:
            return
        index = value[0] & ~CHUNK_LAST
        if index != self._next:
            done.set_exception(
                UnitError(f"{self.name}: reply chunk {index} came where {self._next} was due")
            )
            return
        self._reply += value[1:]
        self._next += 1
        if value[0] & CHUNK_LAST:
            done.set_result(bytes(self._reply))

    async def device_information(self) -> dict[str, Any]:
        """The standard Battery and Device Information services."""
        client = self._client_open()
        with self._errors("reading the standard services"):
            level = await client.read_gatt_char(BATTERY_LEVEL)
            out: dict[str, Any] = {"battery_pct": level[0]}
            for name, uuid in DEVICE_INFO_FIELDS.items():
                out[name] = (await client.read_gatt_char(uuid)).decode()
        return out


async def read_unit(
    units: list[KnownUnit],
    transport: str,
    timeout_s: float = 30.0,
    keystore: KeyStore | None = None,
    own_address: str | None = None,
) -> dict[str, Any]:
    """Battery and device information of the first unit found in service mode,
    from the standard services any BLE tool reads."""
    async with BleLink(units, transport, timeout_s, keystore, own_address) as link:
        assert link.found is not None
        return {
            "unit_id": link.found.unit.unit,
            "address": link.found.device.address,
            "rssi": link.found.rssi,
            **await link.device_information(),
        }
