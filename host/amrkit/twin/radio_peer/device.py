"""One unit's device on the virtual radio, driven by its firmware's calls.

Radio loss is injected here: with probability ``UnitRadio.loss`` a frame
the firmware puts on the air is not heard by anyone, and an advertisement
the unit would have heard while scanning is missed.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bumble import hci
from bumble.device import Advertisement, AdvertisingType, Connection, Device

from amrkit.ble.bumble.link import BumbleHost, VirtualRadio
from amrkit.contract import (
    ADV_IND,
    ADV_NONCONN_IND,
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_SCAN_RESULT,
)
from amrkit.twin.platform._contract import (
    OP_ACTIVE,
    OP_ADDRESS,
    OP_ADVERTISE,
    OP_DISCONNECT,
    OP_NOTIFY,
    OP_PASSKEY,
    OP_REGISTER,
    OP_RPA,
    OP_SCAN,
    OP_SECURITY,
    OP_WRITE,
)
from amrkit.twin.radio_peer.gatt import GattServer
from amrkit.twin.radio_peer.pairing import Pairing
from amrkit.twin.radio_peer.wire import PeerError, Wire


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
        sc_only: bool = True,
    ) -> None:
        self.radio = radio
        self.name = name
        self._lost = lost
        self._irk = irk  # the unit's identity resolving key (for addr_mode 2)
        self._mac = ""  # its public address, the identity a bonded host knows it by
        self._address = ""  # the firmware's current address, hex
        self._on = False  # the firmware's stack is active
        self._scanning = False
        self._host: BumbleHost | None = None
        self._connections: dict[int, Connection] = {}
        self._wire = Wire(reader, writer)
        self._gatt = GattServer(self._wire)
        self._pairing = Pairing(self._wire, sc_only)

    async def serve(self) -> None:
        try:
            await self._wire.serve(self._call)
        finally:
            await self.close()

    async def close(self) -> None:
        """The firmware is gone (asleep or cut off): the device leaves the radio."""
        host, self._host = self._host, None
        if host is not None:
            await host.close()
        self._pairing.close()
        self._wire.close()

    async def _call(self, op: str, m: dict[str, Any]) -> Any:
        handler = OPS.get(op)
        if handler is None:
            raise PeerError(22, f"unknown call {op!r}")
        return await handler(self, m)

    # -- the firmware's calls ------------------------------------------------------

    async def _op_active(self, m: dict[str, Any]) -> None:
        """Stack on or off. The device joins the radio at the first call that
        needs it, once the firmware has chosen its address (addr_mode is set
        after activation), so that the address it bonds under is that one."""
        self._mac = m.get("mac", self._mac)
        self._address = m["addr"]
        self._on = bool(m["on"])
        if not self._on:
            host, self._host = self._host, None
            if host is not None:
                await host.close()
            self._connections.clear()
            self._scanning = False

    async def _op_rpa(self, m: dict[str, Any]) -> str:
        """A resolvable private address from the unit's IRK."""
        return _hex(hci.Address.generate_private_address(self._irk))

    async def _op_security(self, m: dict[str, Any]) -> None:
        self._pairing.configure(m)

    async def _op_address(self, m: dict[str, Any]) -> None:
        self._address = m["addr"]
        if self._host is not None:
            await self._use_address(self._host.device)

    async def _op_register(self, m: dict[str, Any]) -> list[list[int]]:
        return self._gatt.register(await self._device(), m["services"])

    async def _op_write(self, m: dict[str, Any]) -> None:
        device = await self._device()
        await self._gatt.write(
            device, m["handle"], bytes.fromhex(m["value"]), bool(m.get("update"))
        )

    async def _op_notify(self, m: dict[str, Any]) -> None:
        device = await self._device()
        connection = self._connections.get(m["conn"])
        await self._gatt.notify(device, connection, m["handle"], bytes.fromhex(m["value"]))

    async def _op_advertise(self, m: dict[str, Any]) -> None:
        if m["interval_us"] is None and self._off_air():
            return
        device = await self._device()
        await device.stop_advertising()
        if m["interval_us"] is None or (not m.get("connectable") and self._lost()):
            return  # stopped, or a frame nobody hears
        self._address = m.get("addr", self._address)
        await self._use_address(device)
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

    async def _op_scan(self, m: dict[str, Any]) -> None:
        if not m["on"] and self._off_air():
            return
        device = await self._device()
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

    async def _op_disconnect(self, m: dict[str, Any]) -> bool:
        if self._off_air():
            return False
        connection = self._connections.get(m["conn"])
        if connection is None:
            return False
        await connection.disconnect()
        return True

    async def _op_passkey(self, m: dict[str, Any]) -> None:
        self._stack_on()
        self._pairing.passkey(m["conn"], int(m["passkey"]))

    # -- the device ------------------------------------------------------------------

    def _stack_on(self) -> None:
        if not self._on:
            raise PeerError(5, "the BLE stack is not active")

    def _off_air(self) -> bool:
        """With the stack on: is the device still off the radio (so there is
        nothing on the air to stop)?"""
        self._stack_on()
        return self._host is None

    async def _device(self) -> Device:
        """The device, for a call that needs the stack on; it joins the radio now if not yet."""
        self._stack_on()
        if self._host is not None:
            return self._host.device
        host = await self.radio.open_host(self.name, address=str(_address(self._address)))
        device = host.device
        if self._irk and self._mac:
            # Bonded hosts get the IRK and this identity, and so find the
            # unit behind the next session's resolvable private address.
            device.irk = self._irk
            device.public_address = hci.Address(
                str(_address(self._mac)), hci.AddressType.PUBLIC_DEVICE
            )
        self._pairing.serve(device, public_identity=bool(self._mac))
        device.on(device.EVENT_CONNECTION, self._on_connection)
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._host = host
        return device

    async def _use_address(self, device: Device) -> None:
        """The firmware's current address, for advertising and for being
        connected to (the link finds a controller by its random address)."""
        address = _address(self._address)
        if device.random_address != address:
            device.random_address = address
            await device.send_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))

    # -- the device's events ----------------------------------------------------------

    def _on_advertisement(self, adv: Advertisement) -> None:
        if not self._scanning or adv.is_scan_response or self._lost():
            return
        addr = adv.address
        self._wire.event(
            IRQ_SCAN_RESULT,
            [
                0 if addr.is_public else 1,
                _hex(addr),
                ADV_IND if adv.is_connectable else ADV_NONCONN_IND,
                adv.rssi,
                bytes(adv.data_bytes).hex(),
            ],
        )

    def _on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        self._connections[handle] = connection
        peer = connection.peer_address
        addr = _hex(peer)
        addr_type = 0 if peer.is_public else 1
        self._wire.event(IRQ_CENTRAL_CONNECT, [handle, addr_type, addr])

        def disconnected(reason: int) -> None:
            self._connections.pop(handle, None)
            self._wire.event(IRQ_CENTRAL_DISCONNECT, [handle, addr_type, addr])

        connection.on(connection.EVENT_DISCONNECTION, disconnected)
        self._pairing.watch(connection)


# The firmware's calls (the "op" of each line it sends), each with its handler.
OPS: dict[str, Callable[[UnitSession, dict[str, Any]], Awaitable[Any]]] = {
    OP_ACTIVE: UnitSession._op_active,
    OP_RPA: UnitSession._op_rpa,
    OP_SECURITY: UnitSession._op_security,
    OP_ADDRESS: UnitSession._op_address,
    OP_REGISTER: UnitSession._op_register,
    OP_WRITE: UnitSession._op_write,
    OP_NOTIFY: UnitSession._op_notify,
    OP_ADVERTISE: UnitSession._op_advertise,
    OP_SCAN: UnitSession._op_scan,
    OP_DISCONNECT: UnitSession._op_disconnect,
    OP_PASSKEY: UnitSession._op_passkey,
}


def _hex(address: hci.Address) -> str:
    """An address as the firmware writes it: 12 hex digits, most significant first."""
    return address.to_string(False).replace(":", "").lower()


def _address(hex_addr: str) -> hci.Address:
    text = ":".join(hex_addr[i : i + 2] for i in range(0, 12, 2)).upper()
    return hci.Address(text, hci.AddressType.RANDOM_DEVICE)


class UnitRadio:
    """Where one unit's firmware reaches the radio: a local TCP port; each
    connection to it (one boot) drives one bumble device. Runs on the radio's loop."""

    def __init__(
        self,
        radio: VirtualRadio,
        name: str,
        directory: Path | None = None,
        *,
        sc_only: bool = True,
    ) -> None:
        self.radio = radio
        self.name = name
        # The production image's NimBLE refuses legacy pairing and short keys
        # (Secure Connections Only mode); stock MicroPython does not. Read at
        # each boot.
        self.sc_only = sc_only
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
        session = UnitSession(
            self.radio, self.name, reader, writer, self._lost, self.irk, self.sc_only
        )
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
