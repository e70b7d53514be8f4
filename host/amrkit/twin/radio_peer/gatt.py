"""The firmware's GATT database on its device: the services it registers,
with MicroPython's characteristic flags turned into bumble's properties and
permissions. Values live here (the firmware's gatts_write puts them here);
a host's write is kept and reported to the firmware as _IRQ_GATTS_WRITE."""

from __future__ import annotations

from typing import Any

from bumble.att import Attribute
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from amrkit.contract import (
    FLAG_READ,
    FLAG_READ_AUTHENTICATED,
    FLAG_READ_AUTHORIZED,
    FLAG_READ_ENCRYPTED,
    FLAG_WRITE,
    FLAG_WRITE_AUTHENTICATED,
    FLAG_WRITE_AUTHORIZED,
    FLAG_WRITE_ENCRYPTED,
    FLAG_WRITE_NO_RESPONSE,
    IRQ_GATTS_WRITE,
)
from amrkit.twin.radio_peer.wire import PeerError, Wire

# MicroPython characteristic flags -> bumble properties and permissions.
_PROPERTY_MASK = 0x00FF
_READ_PERMISSIONS = (
    (FLAG_READ_ENCRYPTED, Attribute.READ_REQUIRES_ENCRYPTION),
    (FLAG_READ_AUTHENTICATED, Attribute.READ_REQUIRES_AUTHENTICATION),
    (FLAG_READ_AUTHORIZED, Attribute.READ_REQUIRES_AUTHORIZATION),
)
_WRITE_PERMISSIONS = (
    (FLAG_WRITE_ENCRYPTED, Attribute.WRITE_REQUIRES_ENCRYPTION),
    (FLAG_WRITE_AUTHENTICATED, Attribute.WRITE_REQUIRES_AUTHENTICATION),
    (FLAG_WRITE_AUTHORIZED, Attribute.WRITE_REQUIRES_AUTHORIZATION),
)


def permissions_for(flags: int) -> Attribute.Permissions:
    permissions = Attribute.Permissions(0)
    if flags & FLAG_READ:
        permissions |= Attribute.READABLE
        for bit, permission in _READ_PERMISSIONS:
            if flags & bit:
                permissions |= permission
    if flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
        permissions |= Attribute.WRITEABLE
        for bit, permission in _WRITE_PERMISSIONS:
            if flags & bit:
                permissions |= permission
    return permissions


class GattServer:
    """One boot's GATT database, by value handle."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._values: dict[int, bytes] = {}
        self._characteristics: dict[int, Characteristic[bytes]] = {}

    def register(self, device: Device, services: list[list[Any]]) -> list[list[int]]:
        """gatts_register_services: [[uuid, [[uuid, flags], ...]], ...] ->
        the value handles, per service."""
        built: list[tuple[Service, list[Characteristic[bytes]]]] = []
        for uuid, chars in services:
            characteristics = [self._characteristic(c_uuid, flags) for c_uuid, flags in chars]
            built.append((Service(uuid, characteristics), characteristics))
        device.add_services([service for service, _ in built])
        handles = []
        for _, characteristics in built:
            row = []
            for characteristic in characteristics:
                self._characteristics[characteristic.handle] = characteristic
                self._values[characteristic.handle] = b""
                row.append(characteristic.handle)
            handles.append(row)
        return handles

    async def write(self, device: Device, handle: int, value: bytes, update: bool) -> None:
        """gatts_write: the value, and with send_update to subscribers too."""
        self._values[handle] = value
        if update:
            await device.notify_subscribers(self._characteristics[handle], value)

    async def notify(
        self, device: Device, connection: Connection | None, handle: int, value: bytes
    ) -> None:
        characteristic = self._characteristics.get(handle)
        if connection is None or characteristic is None:
            raise PeerError(22, "no such connection or characteristic")
        await device.notify_subscriber(connection, characteristic, value, force=True)

    def _characteristic(self, uuid: str, flags: int) -> Characteristic[bytes]:
        holder: list[Characteristic[bytes]] = []

        def read(connection: Connection) -> bytes:
            return self._values.get(holder[0].handle, b"")

        def write(connection: Connection, value: bytes) -> None:
            handle = holder[0].handle
            self._values[handle] = bytes(value)
            self._wire.event(IRQ_GATTS_WRITE, [connection.handle, handle, bytes(value).hex()])

        characteristic: Characteristic[bytes] = Characteristic(
            uuid,
            Characteristic.Properties(flags & _PROPERTY_MASK),
            permissions_for(flags),
            CharacteristicValue(read=read, write=write),
        )
        holder.append(characteristic)
        return characteristic
