"""A virtual unit's side of the radio: the bumble device its firmware drives.

The firmware's ``bluetooth`` emulation (twin/platform/bluetooth.py) opens a
TCP connection here when its stack is first activated. Each connection is
one boot of the firmware; each activation of its stack is one bumble device
on the virtual radio, advertising from the address the firmware chose
(a fresh one per frame), scanning, serving GATT, pairing and bonding. When
the firmware process ends (deep sleep, power cut) the device leaves the
radio and its links drop, as a chip going to sleep does.

Radio loss is injected here: with probability ``UnitRadio.loss`` a frame
the firmware puts on the air is not heard by anyone, and an advertisement
the unit would have heard while scanning is missed.

The wire is JSON lines. The firmware sends ``{"op": ...}`` and waits for
``{"ok": true, "result": ...}``; the device sends IRQ events
``{"ev": code, "data": [...]}`` (with ``"id"`` when the firmware's answer is
needed: bonding secrets), answered by ``{"op": "reply", "id", "result"}``.
Pairing secrets never stay here: the keystore hands them to the firmware,
which keeps them in its own flash as MicroPython does (_IRQ_SET_SECRET).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bumble import hci
from bumble.att import Attribute
from bumble.device import Advertisement, AdvertisingType, Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

from amrkit.ble.bumble.link import BumbleHost, VirtualRadio
from amrkit.paths import firmware_module

log = logging.getLogger(__name__)

_contract = firmware_module("contract")
IRQ_CENTRAL_CONNECT: int = _contract.IRQ_CENTRAL_CONNECT
IRQ_CENTRAL_DISCONNECT: int = _contract.IRQ_CENTRAL_DISCONNECT
IRQ_GATTS_WRITE: int = _contract.IRQ_GATTS_WRITE
IRQ_SCAN_RESULT: int = _contract.IRQ_SCAN_RESULT
IRQ_ENCRYPTION_UPDATE: int = _contract.IRQ_ENCRYPTION_UPDATE
IRQ_GET_SECRET: int = _contract.IRQ_GET_SECRET
IRQ_SET_SECRET: int = _contract.IRQ_SET_SECRET
IRQ_PASSKEY_ACTION: int = _contract.IRQ_PASSKEY_ACTION
ADV_IND: int = _contract.ADV_IND
ADV_NONCONN_IND: int = _contract.ADV_NONCONN_IND
PASSKEY_ACTION_DISPLAY: int = _contract.PASSKEY_ACTION_DISPLAY
SECRET_PEER: int = _contract.SECRET_PEER  # the secret type this device stores: keys for one peer
ANSWER_TIMEOUT_S = 10.0

# MicroPython characteristic flags -> bumble properties and permissions.
_FLAG_READ: int = _contract.FLAG_READ
_FLAG_WRITE_NO_RESPONSE: int = _contract.FLAG_WRITE_NO_RESPONSE
_FLAG_WRITE: int = _contract.FLAG_WRITE
_PROPERTY_MASK = 0x00FF
_READ_PERMISSIONS = (
    (_contract.FLAG_READ_ENCRYPTED, Attribute.READ_REQUIRES_ENCRYPTION),
    (_contract.FLAG_READ_AUTHENTICATED, Attribute.READ_REQUIRES_AUTHENTICATION),
    (_contract.FLAG_READ_AUTHORIZED, Attribute.READ_REQUIRES_AUTHORIZATION),
)
_WRITE_PERMISSIONS = (
    (_contract.FLAG_WRITE_ENCRYPTED, Attribute.WRITE_REQUIRES_ENCRYPTION),
    (_contract.FLAG_WRITE_AUTHENTICATED, Attribute.WRITE_REQUIRES_AUTHENTICATION),
    (_contract.FLAG_WRITE_AUTHORIZED, Attribute.WRITE_REQUIRES_AUTHORIZATION),
)


class PeerError(Exception):
    """A call the device cannot carry out; errno goes back to the firmware."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


def permissions_for(flags: int) -> Attribute.Permissions:
    permissions = Attribute.Permissions(0)
    if flags & _FLAG_READ:
        permissions |= Attribute.READABLE
        for bit, permission in _READ_PERMISSIONS:
            if flags & bit:
                permissions |= permission
    if flags & (_FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE):
        permissions |= Attribute.WRITEABLE
        for bit, permission in _WRITE_PERMISSIONS:
            if flags & bit:
                permissions |= permission
    return permissions


def encode_peer_keys(name: str, keys: PairingKeys) -> bytes:
    """What the firmware keeps for one bonded peer: name, then the LTK and
    the peer's IRK (LE Secure Connections distributes no more)."""
    raw = name.encode()
    flags = 0
    body = b""
    if keys.ltk is not None:
        flags |= 1 | (2 if keys.ltk.authenticated else 0)
        body += keys.ltk.value
    if keys.irk is not None:
        flags |= 4
        body += keys.irk.value
    return bytes((len(raw),)) + raw + bytes((flags,)) + body


def decode_peer_keys(data: bytes) -> tuple[str, PairingKeys]:
    n = data[0]
    name = data[1 : 1 + n].decode()
    flags = data[1 + n]
    rest = data[2 + n :]
    keys = PairingKeys()
    if flags & 1:
        keys.ltk = PairingKeys.Key(value=rest[:16], authenticated=bool(flags & 2))
        rest = rest[16:]
    if flags & 4:
        keys.irk = PairingKeys.Key(value=rest[:16])
    return name, keys


class FirmwareKeyStore(KeyStore):
    """Bonding keys kept by the firmware (in its NVS), asked for over the wire."""

    def __init__(self, session: UnitSession) -> None:
        self._session = session

    async def update(self, name: str, keys: PairingKeys) -> None:
        stored = await self._session.ask(
            IRQ_SET_SECRET, [SECRET_PEER, name.encode().hex(), encode_peer_keys(name, keys).hex()]
        )
        if not stored:
            log.warning("the unit did not keep the bond with %s", name)

    async def get(self, name: str) -> PairingKeys | None:
        value = await self._session.ask(IRQ_GET_SECRET, [SECRET_PEER, 0, name.encode().hex()])
        if not value:
            return None
        keys = decode_peer_keys(bytes.fromhex(value))[1]
        self._session.bond_authenticated[name] = bool(keys.ltk and keys.ltk.authenticated)
        return keys

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        found: list[tuple[str, PairingKeys]] = []
        for index in itertools.count():
            value = await self._session.ask(IRQ_GET_SECRET, [SECRET_PEER, index, None])
            if not value:
                return found
            found.append(decode_peer_keys(bytes.fromhex(value)))
        raise AssertionError("unreachable")

    async def delete(self, name: str) -> None:
        await self._session.ask(IRQ_SET_SECRET, [SECRET_PEER, name.encode().hex(), None])

    async def delete_all(self) -> None:
        for name, _ in await self.get_all():
            await self.delete(name)


class FirmwareDelegate(PairingDelegate):
    """Pairing as the firmware configured it; the passkey comes from the firmware."""

    def __init__(self, session: UnitSession, connection: Connection, io: int) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability(io))
        self._session = session
        self._connection = connection

    async def generate_passkey(self) -> int:
        self._session.mitm[self._connection.handle] = True  # passkey entry
        return await self._session.passkey_from_firmware(self._connection)

    async def confirm(self, auto: bool = False) -> bool:
        # Just Works: accepted, as NimBLE does, but the key is unauthenticated.
        self._session.mitm[self._connection.handle] = False
        return True


class UnitSession:
    """One boot of one unit's firmware, live on the radio."""

    def __init__(
        self,
        radio: VirtualRadio,
        name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        lost: Callable[[], bool] = lambda: False,
        irk: bytes = b"",
    ) -> None:
        self.radio = radio
        self.name = name
        self._lost = lost
        self._irk = irk  # the unit's identity resolving key (for addr_mode 2)
        self._mac = ""  # its public address, the identity a bonded host knows it by
        self._address = ""  # the firmware's current address, hex
        self._on = False  # the firmware's stack is active
        self._scanning = False
        self._reader = reader
        self._writer = writer
        self._host: BumbleHost | None = None
        self._security = {"bond": False, "le_secure": False, "mitm": False, "io": 3}
        self._values: dict[int, bytes] = {}
        self._characteristics: dict[int, Characteristic[bytes]] = {}
        self._connections: dict[int, Connection] = {}
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._passkeys: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        # bumble counts every encrypted LE link as authenticated; NimBLE only
        # one keyed by MITM pairing. What each link and stored bond really is:
        self.mitm: dict[int, bool] = {}
        self.bond_authenticated: dict[str, bool] = {}

    # -- the wire ----------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")

    def event(self, code: int, data: list[Any]) -> None:
        self._send({"ev": code, "data": data})

    async def ask(self, code: int, data: list[Any]) -> Any:
        """Raise an IRQ whose handler's return value is needed, and wait for it."""
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[ident] = future
        self._send({"ev": code, "data": data, "id": ident})
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        finally:
            self._answers.pop(ident, None)

    async def passkey_from_firmware(self, connection: Connection) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._passkeys[connection.handle] = future
        self.event(IRQ_PASSKEY_ACTION, [connection.handle, PASSKEY_ACTION_DISPLAY, 0])
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        finally:
            self._passkeys.pop(connection.handle, None)

    async def serve(self) -> None:
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                op = message.pop("op")
                if op == "reply":
                    future = self._answers.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message.get("result"))
                    continue
                try:
                    result = await self._call(op, message)
                    self._send({"ok": True, "result": result})
                except PeerError as err:
                    self._send({"ok": False, "errno": err.errno, "error": str(err)})
                await self._writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        """The firmware is gone (asleep or cut off): the device leaves the radio."""
        host, self._host = self._host, None
        if host is not None:
            await host.close()
        for future in list(self._answers.values()) + list(self._passkeys.values()):
            if not future.done():
                future.cancel()
        self._writer.close()

    # -- the firmware's calls ------------------------------------------------------

    async def _call(self, op: str, m: dict[str, Any]) -> Any:
        if op == "active":
            self._mac = m.get("mac", self._mac)
            return await self._active(bool(m["on"]), m["addr"])
        if op == "rpa":  # a resolvable private address from the unit's IRK
            rpa = hci.Address.generate_private_address(self._irk)
            return _hex(rpa)
        if op == "security":
            self._security.update({k: m[k] for k in self._security})
            return None
        if op == "address":
            self._address = m["addr"]
            if self._host is not None:
                await self._use_address(self._host)
            return None
        if not self._on:
            raise PeerError(5, "the BLE stack is not active")
        if self._host is None and (
            op == "disconnect"
            or (op == "scan" and not m["on"])
            or (op == "advertise" and m["interval_us"] is None)
        ):
            return False if op == "disconnect" else None  # nothing on the air to stop
        host = await self._device_host()
        device = host.device
        if op == "register":
            return self._register(m["services"])
        if op == "write":
            value = bytes.fromhex(m["value"])
            self._values[m["handle"]] = value
            if m.get("update"):
                await device.notify_subscribers(self._characteristics[m["handle"]], value)
            return None
        if op == "notify":
            connection = self._connections.get(m["conn"])
            characteristic = self._characteristics.get(m["handle"])
            if connection is None or characteristic is None:
                raise PeerError(22, "no such connection or characteristic")
            await device.notify_subscriber(
                connection, characteristic, bytes.fromhex(m["value"]), force=True
            )
            return None
        if op == "advertise":
            await device.stop_advertising()
            if m["interval_us"] is None or (not m.get("connectable") and self._lost()):
                return None  # stopped, or a frame nobody hears
            self._address = m.get("addr", self._address)
            await self._use_address(host)
            interval_ms = m["interval_us"] / 1000
            await device.start_advertising(
                advertising_type=(
                    AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                    if m.get("connectable", True)
                    else AdvertisingType.UNDIRECTED
                ),
                own_address_type=hci.OwnAddressType.RANDOM,
                advertising_data=bytes.fromhex(m["data"]),
                scan_response_data=b"",
                advertising_interval_min=interval_ms,
                advertising_interval_max=interval_ms,
            )
            return None
        if op == "scan":
            if self._scanning:
                await device.stop_scanning()
            self._scanning = bool(m["on"])
            if self._scanning:
                await device.start_scanning(
                    active=False,
                    scan_interval=m["interval_us"] / 1000,
                    scan_window=m["window_us"] / 1000,
                    filter_duplicates=False,
                )
            return None
        if op == "disconnect":
            connection = self._connections.get(m["conn"])
            if connection is None:
                return False
            await connection.disconnect()
            return True
        if op == "passkey":
            future = self._passkeys.get(m["conn"])
            if future is not None and not future.done():
                future.set_result(int(m["passkey"]))
            return None
        raise PeerError(22, f"unknown call {op!r}")

    async def _active(self, on: bool, addr: str) -> None:
        """Stack on or off. The device joins the radio at the first call that
        needs it, once the firmware has chosen its address (addr_mode is set
        after activation), so that the address it bonds under is that one."""
        self._address = addr
        self._on = on
        if not on:
            host, self._host = self._host, None
            if host is not None:
                await host.close()
            self._connections.clear()
            self._scanning = False

    async def _device_host(self) -> BumbleHost:
        if self._host is not None:
            return self._host
        host = await self.radio.open_host(self.name, address=str(_address(self._address)))
        device = host.device
        if self._irk and self._mac:
            # Bonded hosts get the IRK and this identity, and so find the
            # unit behind the next session's resolvable private address.
            device.irk = self._irk
            device.public_address = hci.Address(
                str(_address(self._mac)), hci.AddressType.PUBLIC_DEVICE
            )
        device.keystore = FirmwareKeyStore(self)
        device.pairing_config_factory = self._pairing_config
        device.on(device.EVENT_CONNECTION, self._on_connection)
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._host = host
        return host

    async def _use_address(self, host: BumbleHost) -> None:
        """The firmware's current address, for advertising and for being
        connected to (the link finds a controller by its random address)."""
        address = _address(self._address)
        device = host.device
        if device.random_address != address:
            device.random_address = address
            await device.send_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))

    def _on_advertisement(self, adv: Advertisement) -> None:
        if not self._scanning or adv.is_scan_response or self._lost():
            return
        addr = adv.address
        self.event(
            IRQ_SCAN_RESULT,
            [
                0 if addr.is_public else 1,
                _hex(addr),
                ADV_IND if adv.is_connectable else ADV_NONCONN_IND,
                adv.rssi,
                bytes(adv.data_bytes).hex(),
            ],
        )

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        s = self._security
        return PairingConfig(
            sc=bool(s["le_secure"]),
            mitm=bool(s["mitm"]),
            bonding=bool(s["bond"]),
            delegate=FirmwareDelegate(self, connection, int(s["io"])),
            identity_address_type=PairingConfig.AddressType.PUBLIC if self._mac else None,
        )

    def _register(self, services: list[list[Any]]) -> list[list[int]]:
        assert self._host is not None
        built: list[tuple[Service, list[Characteristic[bytes]]]] = []
        for uuid, chars in services:
            characteristics = [self._characteristic(c_uuid, flags) for c_uuid, flags in chars]
            built.append((Service(uuid, characteristics), characteristics))
        self._host.device.add_services([service for service, _ in built])
        handles = []
        for _, characteristics in built:
            row = []
            for characteristic in characteristics:
                self._characteristics[characteristic.handle] = characteristic
                self._values[characteristic.handle] = b""
                row.append(characteristic.handle)
            handles.append(row)
        return handles

    def _characteristic(self, uuid: str, flags: int) -> Characteristic[bytes]:
        holder: list[Characteristic[bytes]] = []

        def read(connection: Connection) -> bytes:
            return self._values.get(holder[0].handle, b"")

        def write(connection: Connection, value: bytes) -> None:
            handle = holder[0].handle
            self._values[handle] = bytes(value)
            self.event(IRQ_GATTS_WRITE, [connection.handle, handle, bytes(value).hex()])

        characteristic: Characteristic[bytes] = Characteristic(
            uuid,
            Characteristic.Properties(flags & _PROPERTY_MASK),
            permissions_for(flags),
            CharacteristicValue(read=read, write=write),
        )
        holder.append(characteristic)
        return characteristic

    # -- the device's events ----------------------------------------------------------

    def _on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        self._connections[handle] = connection
        peer = connection.peer_address
        addr = _hex(peer)
        addr_type = 0 if peer.is_public else 1
        self.event(IRQ_CENTRAL_CONNECT, [handle, addr_type, addr])

        def disconnected(reason: int) -> None:
            self._connections.pop(handle, None)
            self.mitm.pop(handle, None)
            self.event(IRQ_CENTRAL_DISCONNECT, [handle, addr_type, addr])

        def really_authenticated() -> bool:
            if handle in self.mitm:  # paired on this link
                return self.mitm[handle]
            return self.bond_authenticated.get(str(connection.peer_address), False)

        def paired(keys: PairingKeys) -> None:
            connection.authenticated = really_authenticated()

        def encryption_changed() -> None:
            authenticated = really_authenticated()
            connection.authenticated = authenticated
            self.event(
                IRQ_ENCRYPTION_UPDATE,
                [
                    handle,
                    bool(connection.is_encrypted),
                    authenticated,
                    # paired here with bonding on, or encrypted with a stored bond
                    (bool(self._security["bond"]) and handle in self.mitm)
                    or str(connection.peer_address) in self.bond_authenticated,
                    connection.encryption_key_size,
                ],
            )

        connection.on(connection.EVENT_DISCONNECTION, disconnected)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encryption_changed)
        connection.on(connection.EVENT_PAIRING, paired)


def _hex(address: hci.Address) -> str:
    """An address as the firmware writes it: 12 hex digits, most significant first."""
    return address.to_string(False).replace(":", "").lower()


def _address(hex_addr: str) -> hci.Address:
    text = ":".join(hex_addr[i : i + 2] for i in range(0, 12, 2)).upper()
    return hci.Address(text, hci.AddressType.RANDOM_DEVICE)


class UnitRadio:
    """Where one unit's firmware reaches the radio: a local TCP port; each
    connection to it (one boot) drives one bumble device. Runs on the radio's loop."""

    def __init__(self, radio: VirtualRadio, name: str, directory: Path | None = None) -> None:
        self.radio = radio
        self.name = name
        # The unit's IRK lives with its flash, so a bond outlasts the session
        # (on the chip the BLE stack keeps it; the firmware never sees it).
        self.irk = b""
        if directory is not None:
            path = directory / "ble_irk.bin"
            if not path.exists():
                path.write_bytes(secrets.token_bytes(16))
            self.irk = path.read_bytes()
        self.loss = 0.0  # chance that a frame, or an advertisement to hear, is lost
        self._rng = random.Random(name)  # the same losses run after run
        self.sessions: list[UnitSession] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen; the spec ("127.0.0.1:PORT") the firmware connects to."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = UnitSession(self.radio, self.name, reader, writer, self._lost, self.irk)
        self.sessions.append(session)
        try:
            await session.serve()
        finally:
            self.sessions.remove(session)

    def _lost(self) -> bool:
        return self.loss > 0 and self._rng.random() < self.loss

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in self.sessions:
            await session.close()
