"""A bleak client backend over bumble.

Pass the class with bleak's public ``backend=`` argument; bleak forwards the
keywords it does not know (``passkey=``, ``keystore=``, ``own_address=``,
``bumble=``) to it::

    BleakClient(device, backend=bumble_client("virtual:lab"), passkey=123456)
    BleakClient("C1:23:45:67:89:AB", backend=BumbleClient, pair=True)

The transport is chosen as :class:`~amrkit.ble.bumble.scanner.BumbleScanner`
chooses it: ``bumble={"transport": ...}``, the transport bound by
:func:`bumble_client`, ``AMR_BUMBLE_TRANSPORT``, then ``usb:0``. Each
``connect()`` opens the transport and powers a host on it; ``disconnect()``,
or the link going down, closes it again. bleak's disconnected callback runs
whenever a connected link goes down, whichever side ended it (as with BlueZ).

A target is a ``BLEDevice`` from the bumble scanner (its details carry the
address type) or an address string, random unless suffixed ``/P`` as bumble's
``Address`` reads it: peripherals advertise from random addresses.

Pairing is LE Secure Connections with bonding and MITM protection. With
``passkey=`` (a number, or an async callable returning one or None to refuse)
the client is a keyboard and answers a passkey the peripheral displays;
without it the client has no input or output, which leaves only Just Works.
Bonds go to ``keystore=`` (default: in memory, so keys never reach the disk
unencrypted) and are reused: ``pair()`` on a bonded peer just encrypts. The
peer knows a bond by our address, so the client keeps one random static
address for all its connections; pass ``own_address=`` to keep it across
clients (and store it with the keystore).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypedDict

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakError,
    BleakGATTProtocolError,
)
from bleak.uuids import normalize_uuid_16
from bumble import att, core, hci, smp
from bumble.device import Connection, Device
from bumble.gatt_client import Client as GattClient
from bumble.keys import KeyStore, MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate

from amrkit.ble.bumble.link import BumbleHost, VirtualRadio
from amrkit.ble.bumble.scanner import (
    BumbleDeviceDetails,
    bind_transport,
    open_for_bleak,
    resolve_transport,
)

logger = logging.getLogger(__name__)

ClientTransport = str | VirtualRadio
"""A bumble transport string or an in-process radio (the client needs its own host)."""

Passkey = int | Callable[[], Awaitable[int | None]]
"""The passkey the peripheral displays, or an async callable asking for it."""

ATT_MTU = 517
"""The MTU asked for on connect (the largest ATT allows)."""

_CCCD = normalize_uuid_16(0x2902)
_ATT = att.ErrorCode
_ATT_HINTS = {
    _ATT.INSUFFICIENT_AUTHENTICATION: "the peripheral wants an authenticated link: "
    "pair() with the passkey it displays",
    _ATT.INSUFFICIENT_ENCRYPTION: "the peripheral wants an encrypted link: pair() first",
    _ATT.INSUFFICIENT_ENCRYPTION_KEY_SIZE: "the peripheral wants a stronger key: pair() again",
}
_SMP = smp.ErrorCode
_SMP_REASONS = {
    _SMP.PASSKEY_ENTRY_FAILED: "no passkey was entered (pass passkey=...)",
    _SMP.AUTHENTICATION_REQUIREMENTS: "the peripheral's security requirements cannot be met",
    _SMP.PAIRING_NOT_SUPPORTED: "the peripheral refused to pair",
    _SMP.REPEATED_ATTEMPTS: "too many attempts (wait before retrying)",
    _SMP.DHKEY_CHECK_FAILED: "DHKey check failed (check the passkey)",
}


class BumbleClientArgs(TypedDict, total=False):
    """The ``bumble=`` keyword of ``BleakClient`` when this backend is in use."""

    transport: ClientTransport


def _uuid_str(value: core.UUID) -> str:
    """A bumble UUID as bleak's normalized 128-bit string."""
    return str(uuid.UUID(bytes=value.to_bytes(force_128=True)[::-1]))


def _address(text: str) -> hci.Address:
    try:
        return hci.Address(text)
    except ValueError as err:
        raise BleakError(f"not a Bluetooth address: {text!r} ({err})") from err


def _properties(flags: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if flags & bit]


class _PasskeyDelegate(PairingDelegate):
    """Keyboard-only when there is a passkey to type, else no input or output."""

    def __init__(self, passkey: Passkey | None) -> None:
        super().__init__(
            PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
            if passkey is None
            else PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY
        )
        self._passkey = passkey

    async def get_number(self) -> int | None:
        if self._passkey is None or isinstance(self._passkey, int):
            return self._passkey
        return await self._passkey()


class BumbleClient(BaseBleakClient):
    """bleak client backend that drives a bumble host (USB/serial/TCP/virtual)."""

    transport: ClassVar[ClientTransport | None] = None
    """Bound by :func:`bumble_client`; None means env var, then default."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        passkey: Passkey | None = None,
        keystore: KeyStore | None = None,
        own_address: str | None = None,
        bumble: BumbleClientArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, **kwargs)
        args = bumble or {}
        self._transport = resolve_transport(args.get("transport", type(self).transport))
        self._requested_services = services
        self._passkey = passkey
        self._pairing_passkey = passkey
        self._keystore = keystore if keystore is not None else MemoryKeyStore()
        self._name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._name = address_or_ble_device.name
            details = address_or_ble_device.details
            peer = details.address if isinstance(details, BumbleDeviceDetails) else self.address
        else:
            peer = address_or_ble_device
        self._peer = peer if isinstance(peer, hci.Address) else _address(peer)
        self._own_address = (
            hci.Address.generate_static_address() if own_address is None else _address(own_address)
        )
        if not self._own_address.is_static:
            raise BleakError(f"own_address {own_address!r} is not a random static address")
        self._host: BumbleHost | None = None
        self._connection: Connection | None = None
        self._closing: asyncio.Task[None] | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._require().att_mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _require(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    @property
    def _gatt(self) -> GattClient:
        return self._require().gatt_client

    async def _open(self) -> BumbleHost:
        transport = self._transport
        if isinstance(transport, Device):
            raise BleakError("BumbleClient powers its own host: give it a transport, not a Device")
        return await open_for_bleak(transport, "bleak-client")

    # Connectivity

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._host is not None:
            raise BleakError(f"{self.address}: already connected or connecting; disconnect() first")
        await self._release()  # a link the peer dropped may still be closing its host
        try:
            async with asyncio.timeout(self._timeout):
                self._host = await self._open()
                device = self._host.device
                with self._errors("connecting"):
                    await self._configure(device)
                    connection = await device.connect(self._peer, timeout=None)
                self._connection = connection
                connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
                await self._exchange_mtu(connection.gatt_client)
                if pair:
                    await self._pair(connection)
                self.services = await self._discover(connection.gatt_client)
        except BaseException as err:
            await self._abort()
            if isinstance(err, TimeoutError):
                raise TimeoutError(
                    f"connecting to {self.address} timed out after {self._timeout} s"
                ) from None
            raise

    async def _configure(self, device: Device) -> None:
        """Our pairing side, bonds and address: a bond only holds for the same address."""
        device.keystore = self._keystore
        device.pairing_config_factory = self._pairing_config
        device.static_address = device.random_address = self._own_address
        await device.send_sync_command(
            hci.HCI_LE_Set_Random_Address_Command(random_address=self._own_address)
        )
        await device.refresh_resolving_list()  # find bonded peers behind private addresses

    async def _exchange_mtu(self, gatt: GattClient) -> None:
        with self._errors("exchanging the MTU"):
            try:
                await gatt.request_mtu(ATT_MTU)
            except att.ATT_Error as err:  # optional for the peer: stay at the default
                logger.debug("%s refused an MTU exchange: %s", self.address, err)

    async def _abort(self) -> None:
        """Undo a half-made connection, without telling the app it was connected."""
        if self._connection is not None:
            self._connection.remove_listener(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        await self.disconnect()

    async def disconnect(self) -> None:
        connection = self._connection
        try:
            if connection is not None:
                await connection.disconnect()
        except core.ProtocolError as err:  # the link went down meanwhile
            logger.debug("disconnecting from %s: %s", self.address, err)
        finally:
            await self._release()

    async def _release(self) -> None:
        """Forget the link and close the host, so no controller is left on the radio."""
        self._connection = None
        self._subscribers.clear()
        host, self._host = self._host, None
        if host is not None:
            await host.close()
        closing, self._closing = self._closing, None
        if closing is not None:
            await closing

    def _on_disconnection(self, reason: int) -> None:
        logger.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        self._connection = None
        self._subscribers.clear()
        host, self._host = self._host, None
        if host is not None:
            self._closing = asyncio.get_running_loop().create_task(host.close())
        if self._disconnected_callback is not None:
            # Called from bumble's HCI event dispatch: never let a callback break it.
            try:
                self._disconnected_callback()
            except Exception:
                logger.exception("disconnected callback failed")

    # Pairing

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        return PairingConfig(
            sc=True, mitm=True, bonding=True, delegate=_PasskeyDelegate(self._pairing_passkey)
        )

    async def pair(self, *args: Any, passkey: Passkey | None = None, **kwargs: Any) -> None:
        """Pair (or, when bonded, encrypt); ``passkey=`` overrides the client's."""
        connection = self._require()
        try:
            async with asyncio.timeout(self._timeout):
                await self._pair(connection, passkey)
        except TimeoutError:
            raise TimeoutError(
                f"pairing with {self.address} timed out after {self._timeout} s"
            ) from None

    async def _pair(self, connection: Connection, passkey: Passkey | None = None) -> None:
        if connection.is_encrypted:
            return
        what = f"pairing with {self.address}"
        bonded = await self._keystore.get(str(connection.peer_address)) is not None
        self._pairing_passkey = self._passkey if passkey is None else passkey
        try:
            with self._errors(what):
                try:
                    await (connection.encrypt() if bonded else connection.pair())
                except core.ProtocolError as err:
                    raise BleakError(
                        f"{what} failed: {self._pairing_failure(err, bonded)}"
                    ) from err
        finally:
            self._pairing_passkey = self._passkey

    def _pairing_failure(self, err: core.ProtocolError, bonded: bool) -> str:
        if err.error_namespace == "smp" and err.error_code is not None:
            reason = _SMP(err.error_code)
            if reason != _SMP.CONFIRM_VALUE_FAILED:
                return _SMP_REASONS.get(reason, reason.name.lower().replace("_", " "))
            if self._pairing_passkey is None:
                return "the peripheral refused Just Works (it may need passkey=...)"
            return "passkey rejected (check the passkey)"
        if bonded:
            return f"the stored bond was refused ({err}); unpair() and pair again"
        return str(err)

    async def unpair(self) -> None:
        """Forget the bond with the peer (and disconnect, as bleak's backends do)."""
        names = {str(self._peer)}
        if self._connection is not None:
            names.add(str(self._connection.peer_address))
        await self.disconnect()
        for name in names:
            await self._keystore.delete(name)

    # Services

    async def _discover(self, gatt: GattClient) -> BleakGATTServiceCollection:
        wanted = [core.UUID(s) for s in self._requested_services or ()]
        collection = BleakGATTServiceCollection()
        with self._errors("discovering services"):
            for service in await gatt.discover_services(wanted):
                bleak_service = BleakGATTService(service, service.handle, _uuid_str(service.uuid))
                collection.add_service(bleak_service)
                for char in await gatt.discover_characteristics((), service):
                    bleak_char = BleakGATTCharacteristic(
                        char,
                        char.handle,
                        _uuid_str(char.uuid),
                        _properties(char.properties),
                        lambda: self.mtu_size - 3,
                        bleak_service,
                    )
                    collection.add_characteristic(bleak_char)
                    for descriptor in await gatt.discover_descriptors(char):
                        collection.add_descriptor(
                            BleakGATTDescriptor(
                                descriptor,
                                descriptor.handle,
                                _uuid_str(descriptor.type),
                                bleak_char,
                            )
                        )
        return collection

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """bumble's failures as bleak's: ATT errors keep their code."""
        try:
            yield
        except att.ATT_Error as err:
            error = BleakGATTProtocolError(err.error_code)
            error.add_note(f"{what} on {self.address}")
            if hint := _ATT_HINTS.get(_ATT(err.error_code)):
                error.add_note(hint)
            raise error from err
        except asyncio.CancelledError:
            # bumble cancels a request pending when the link drops.
            task = asyncio.current_task()
            if self._connection is not None or (task is not None and task.cancelling()):
                raise
            raise BleakError(f"{what}: {self.address} disconnected") from None
        except core.BaseBumbleError as err:
            raise BleakError(f"{what} on {self.address} failed: {err}") from err

    # I/O

    async def _read(self, handle: int, what: str, use_cached: bool) -> bytearray:
        gatt = self._gatt
        if use_cached and handle in gatt.cached_values:
            return bytearray(gatt.cached_values[handle][1])
        with self._errors(what):
            value = await gatt.read_value(handle)
        gatt.cache_value(handle, value)
        return bytearray(value)

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(
            characteristic.handle, f"reading characteristic {characteristic.uuid}", use_cached
        )

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(
            descriptor.handle, f"reading descriptor {descriptor.uuid}", use_cached
        )

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        gatt = self._gatt
        with self._errors(f"writing characteristic {characteristic.uuid}"):
            await gatt.write_value(characteristic.handle, bytes(data), with_response=response)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        gatt = self._gatt
        with self._errors(f"writing descriptor {descriptor.uuid}"):
            await gatt.write_value(descriptor.handle, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        gatt = self._gatt
        what = f"subscribing to {characteristic.uuid}"
        if characteristic.handle in self._subscribers:
            raise BleakError(f"{what}: notifications already started")
        if characteristic.get_descriptor(_CCCD) is None:
            raise BleakError(f"{what}: it has no notify or indicate (no CCCD)")

        def on_value(value: bytes) -> None:
            # Called from bumble's ATT dispatch: never let a callback break it.
            try:
                callback(bytearray(value))
            except Exception:
                logger.exception("notification callback failed")

        with self._errors(what):
            await gatt.subscribe(characteristic.obj, on_value)
        self._subscribers[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        gatt = self._gatt
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is None:
            return
        with self._errors(f"unsubscribing from {characteristic.uuid}"):
            await gatt.unsubscribe(characteristic.obj, subscriber)


def bumble_client(transport: ClientTransport) -> type[BumbleClient]:
    """A :class:`BumbleClient` subclass bound to ``transport``, for ``backend=``."""
    return bind_transport(BumbleClient, transport)
