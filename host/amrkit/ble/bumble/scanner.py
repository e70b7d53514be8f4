"""A bleak scanner backend over bumble.

Pass the class with bleak's public ``backend=`` argument::

    BleakScanner(detection_callback=cb, backend=BumbleScanner)
    BleakScanner(cb, backend=bumble_scanner("tcp-client:127.0.0.1:9000"))
    BleakScanner(cb, backend=BumbleScanner, bumble={"transport": "usb:0"})

The bumble transport is chosen, first match wins, from: the ``bumble=``
keyword's ``"transport"`` (bleak forwards unknown keywords to the backend, as
it does ``bluez=`` and ``cb=``), the transport bound by :func:`bumble_scanner`,
the ``AMR_BUMBLE_TRANSPORT`` environment variable, then the module-level
:data:`DEFAULT_TRANSPORT` (``usb:0``).

A transport is any bumble transport string (``usb:0``, ``serial:/dev/ttyACM0``,
``tcp-client:127.0.0.1:1234``, ...), ``virtual:NAME`` for a
:class:`~amrkit.ble.bumble.link.VirtualRadio` open in this process and event loop, a
``VirtualRadio`` object, or a powered-on bumble ``Device`` (which the scanner
borrows and never closes). Each ``start()`` opens the transport and powers a
host on it; ``stop()`` closes it again.
"""

from __future__ import annotations

import logging
import os
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict, TypeVar, cast

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError
from bleak.uuids import normalize_uuid_16, normalize_uuid_32
from bumble import hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Device

from amrkit.ble.bumble.link import BumbleHost, VirtualRadio, open_host

logger = logging.getLogger(__name__)

Transport = str | VirtualRadio | Device
"""A bumble transport string, an in-process radio, or a borrowed powered-on Device."""

ENV_TRANSPORT = "AMR_BUMBLE_TRANSPORT"
DEFAULT_TRANSPORT: Transport = "usb:0"
"""Used when neither the scanner nor ``AMR_BUMBLE_TRANSPORT`` names a transport."""

_T = AdvertisingData.Type
_UUID_LISTS = {
    _T.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    _T.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA = {
    _T.SERVICE_DATA_16_BIT_UUID: 2,
    _T.SERVICE_DATA_32_BIT_UUID: 4,
    _T.SERVICE_DATA_128_BIT_UUID: 16,
}


class BumbleScannerArgs(TypedDict, total=False):
    """The ``bumble=`` keyword of ``BleakScanner`` when this backend is in use."""

    transport: Transport
    scan_interval_ms: float
    scan_window_ms: float


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` for this backend: what a later connect needs."""

    address: hci.Address
    """The bumble address, with its type (public/random)."""
    transport: str
    """Which transport the advertisement was heard on."""


def resolve_transport(explicit: Transport | None = None) -> Transport:
    """The transport a scanner uses: explicit, else the env var, else the default."""
    if explicit is not None:
        return explicit
    return os.environ.get(ENV_TRANSPORT) or DEFAULT_TRANSPORT


def _uuid_str(raw: bytes) -> str:
    """A little-endian 16/32/128-bit UUID as bleak's normalized string."""
    if len(raw) == 2:
        return normalize_uuid_16(int.from_bytes(raw, "little"))
    if len(raw) == 4:
        return normalize_uuid_32(int.from_bytes(raw, "little"))
    return str(uuid.UUID(bytes=raw[::-1]))


def parse_ad(ad_structures: Iterable[tuple[int, bytes]]) -> dict[str, Any]:
    """The AdvertisementData fields carried in AD structures (bleak's conventions)."""
    complete_name: str | None = None
    short_name: str | None = None
    manufacturer_data: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    service_uuids: list[str] = []
    tx_power: int | None = None
    for ad_type, value in ad_structures:
        value = bytes(value)
        if ad_type == _T.COMPLETE_LOCAL_NAME:
            complete_name = value.decode("utf-8", errors="replace")
        elif ad_type == _T.SHORTENED_LOCAL_NAME:
            short_name = value.decode("utf-8", errors="replace")
        elif ad_type == _T.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            manufacturer_data[int.from_bytes(value[:2], "little")] = value[2:]
        elif ad_type in _SERVICE_DATA and len(value) >= _SERVICE_DATA[_T(ad_type)]:
            size = _SERVICE_DATA[_T(ad_type)]
            service_data[_uuid_str(value[:size])] = value[size:]
        elif ad_type in _UUID_LISTS:
            size = _UUID_LISTS[_T(ad_type)]
            for offset in range(0, len(value) - size + 1, size):
                service_uuid = _uuid_str(value[offset : offset + size])
                if service_uuid not in service_uuids:
                    service_uuids.append(service_uuid)
        elif ad_type == _T.TX_POWER_LEVEL and len(value) == 1:
            tx_power = struct.unpack("b", value)[0]
    return {
        "local_name": complete_name if complete_name is not None else short_name,
        "manufacturer_data": manufacturer_data,
        "service_data": service_data,
        "service_uuids": service_uuids,
        "tx_power": tx_power,
    }


def to_advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's view of one bumble advertisement (advert + scan response merged)."""
    rssi = advertisement.rssi
    if rssi == Advertisement.RSSI_NOT_AVAILABLE:
        rssi = -127
    return AdvertisementData(
        **parse_ad(advertisement.data.ad_structures),
        rssi=rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend that drives a bumble host (USB/serial/TCP/virtual)."""

    transport: ClassVar[Transport | None] = None
    """Bound by :func:`bumble_scanner`; None means env var, then default."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bumble: BumbleScannerArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        args = bumble or {}
        self._transport = resolve_transport(args.get("transport", type(self).transport))
        self._active = scanning_mode != "passive"
        self._scan_interval_ms = float(args.get("scan_interval_ms", 60.0))
        self._scan_window_ms = float(args.get("scan_window_ms", self._scan_interval_ms))
        self._host: BumbleHost | None = None
        self._scannable: dict[str, bool] = {}

    @property
    def transport_name(self) -> str:
        transport = self._transport
        if isinstance(transport, str):
            return transport
        if isinstance(transport, VirtualRadio):
            return transport.spec if transport.name else "virtual"
        return "device"

    @property
    def device(self) -> Device | None:
        """The bumble device scanning, while started."""
        return self._host.device if self._host else None

    async def _open(self) -> BumbleHost:
        transport = self._transport
        if isinstance(transport, Device):
            return BumbleHost(transport)  # borrowed: nothing to release
        return await open_for_bleak(transport, "bleak-scanner")

    async def start(self) -> None:
        if self._host is not None:
            raise BleakError("Scanner already started")
        self.seen_devices = {}
        self._scannable = {}
        host = await self._open()
        device = host.device
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            await device.start_scanning(
                active=self._active,
                filter_duplicates=False,
                scan_interval=self._scan_interval_ms,
                scan_window=self._scan_window_ms,
            )
        except BaseException:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await host.close()
            raise
        self._host = host

    async def stop(self) -> None:
        host, self._host = self._host, None
        if host is None:
            return
        device = host.device
        try:
            if device.is_scanning:
                await device.stop_scanning()
        finally:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await host.close()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # Called from bumble's HCI event dispatch: never let a callback break it.
        try:
            self._handle_advertisement(advertisement)
        except Exception:
            logger.exception("detection callback failed")

    def _handle_advertisement(self, advertisement: Advertisement) -> None:
        key = str(advertisement.address)  # keeps the /P suffix: types never collide
        if advertisement.is_scan_response:
            # bumble's virtual controller answers every advert with a fake scan
            # response (same data again), even non-scannable ones: drop those.
            if not self._scannable.get(key, True):
                return
        else:
            self._scannable[key] = advertisement.is_scannable
        adv = to_advertisement_data(advertisement)
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        previous = self.seen_devices.get(key)
        name = adv.local_name or (previous[0].name if previous else None)
        device: BLEDevice = self.create_or_update_device(
            key,
            advertisement.address.to_string(False),
            name,
            BumbleDeviceDetails(advertisement.address, self.transport_name),
            adv,
        )
        self.call_detection_callbacks(device, adv)


async def open_for_bleak(transport: str | VirtualRadio, name: str) -> BumbleHost:
    """A powered host on a virtual radio or a bumble transport, or bleak's
    error for a radio that is not there."""
    if isinstance(transport, VirtualRadio):
        return await transport.open_host(name)
    try:
        return await open_host(transport, name)
    except Exception as err:  # each transport raises its own library's errors
        # (OSError, usb1.USBError for a dongle that is not there, serial's,
        # bumble's HCI_Error, ValueError for an unknown scheme): all mean the
        # same to the caller, no radio there.
        raise BleakBluetoothNotAvailableError(
            f"cannot open bumble transport {transport!r}: {err} "
            f"(set {ENV_TRANSPORT} or pass bumble={{'transport': ...}})",
            BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
        ) from err


_Backend = TypeVar("_Backend", bound=type)


def bind_transport(backend: _Backend, transport: object) -> _Backend:
    """A subclass of a backend class with its ``transport`` set, for bleak's
    ``backend=`` (which takes a class); it keeps the class's name."""
    bound = type(backend.__name__, (backend,), {"transport": transport})
    bound.__qualname__ = backend.__qualname__
    return cast(_Backend, bound)


def bumble_scanner(transport: Transport) -> type[BumbleScanner]:
    """A :class:`BumbleScanner` subclass bound to ``transport``, for ``backend=``."""
    return bind_transport(BumbleScanner, transport)
