"""A unit over BLE in service mode, through bleak's public API.

A unit in service mode advertises a token that only a holder of its keys can
resolve (protocol §10), so the host finds *its* unit among others although no
unit carries a static identifier. The host then pairs with LE Secure
Connections, typing the passkey it derives from the same keys, and reads the
standard Battery and Device Information services. Pairing goes through the
bumble backend (amrkit.ble.bumble), which takes the passkey; the same code runs on
the twin's virtual radio and on a USB HCI dongle.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_16
from bumble.keys import KeyStore

from amrkit.ble.bumble import bumble_client, bumble_scanner
from amrkit.protocol import RID_LENGTH, KnownUnit, service_passkey, service_token

BATTERY_SERVICE = normalize_uuid_16(0x180F)
DEVICE_INFORMATION = normalize_uuid_16(0x180A)
BATTERY_LEVEL = normalize_uuid_16(0x2A19)
DEVICE_INFO_FIELDS = {
    "manufacturer": normalize_uuid_16(0x2A29),
    "model": normalize_uuid_16(0x2A24),
    "firmware": normalize_uuid_16(0x2A26),
    "hardware": normalize_uuid_16(0x2A27),
}


class UnitBleError(RuntimeError):
    """The unit was not found, refused pairing, or did not answer."""


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
    if not {BATTERY_SERVICE, DEVICE_INFORMATION} <= set(adv.service_uuids):
        return None
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

    async with BleakScanner(heard, backend=bumble_scanner(transport)):
        try:
            return await asyncio.wait_for(found, timeout_s)
        except TimeoutError:
            raise UnitBleError(
                f"no unit of the bundle in service mode within {timeout_s:.0f} s: "
                "open service mode on the unit (the maintenance gesture) and try again"
            ) from None


async def read_unit(
    units: list[KnownUnit],
    transport: str,
    timeout_s: float = 30.0,
    keystore: KeyStore | None = None,
    own_address: str | None = None,
) -> dict[str, Any]:
    """Battery and device information of the first unit found in service mode.

    Pairs only when the link is not already encrypted with a bond from
    `keystore` (bumble's; in memory unless given). A unit keeps a bond under
    the host's address: pass the same `own_address` to use it again."""
    hit = await find(units, transport, timeout_s)
    passkey = service_passkey(hit.unit.keys.id, hit.nonce)
    client = BleakClient(
        hit.device,
        backend=bumble_client(transport),
        timeout=timeout_s,
        passkey=passkey,
        keystore=keystore,
        own_address=own_address,
    )
    try:
        async with client:
            await client.pair()
            level = await client.read_gatt_char(BATTERY_LEVEL)
            out: dict[str, Any] = {
                "unit_id": hit.unit.unit,
                "address": hit.device.address,
                "rssi": hit.rssi,
                "battery_pct": level[0],
            }
            for name, uuid in DEVICE_INFO_FIELDS.items():
                out[name] = (await client.read_gatt_char(uuid)).decode()
            return out
    except BleakError as err:
        raise UnitBleError(f"unit {hit.unit.unit} over BLE: {err}") from err
