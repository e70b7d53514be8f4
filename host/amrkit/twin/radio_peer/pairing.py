"""Pairing and bonding on a unit's device, as its firmware configured them
(``config(bond=, le_secure=, mitm=, io=)``). Pairing secrets never stay
here: the key store hands them to the firmware, which keeps them in its own
flash as MicroPython does (_IRQ_SET_SECRET, _IRQ_GET_SECRET), and the
passkey comes from the firmware (_IRQ_PASSKEY_ACTION, answered by
gap_passkey)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from bumble.device import Connection, Device
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

from amrkit.contract import (
    IRQ_ENCRYPTION_UPDATE,
    IRQ_GET_SECRET,
    IRQ_PASSKEY_ACTION,
    IRQ_SET_SECRET,
    PASSKEY_ACTION_DISPLAY,
    SECRET_PEER,
)
from amrkit.twin.radio_peer.wire import ANSWER_TIMEOUT_S, Wire

log = logging.getLogger(__name__)


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

    def __init__(self, wire: Wire, bond_authenticated: dict[str, bool]) -> None:
        self._wire = wire
        self._bond_authenticated = bond_authenticated

    async def update(self, name: str, keys: PairingKeys) -> None:
        stored = await self._wire.ask(
            IRQ_SET_SECRET, [SECRET_PEER, name.encode().hex(), encode_peer_keys(name, keys).hex()]
        )
        if not stored:
            log.warning("the unit did not keep the bond with %s", name)

    async def get(self, name: str) -> PairingKeys | None:
        value = await self._wire.ask(IRQ_GET_SECRET, [SECRET_PEER, 0, name.encode().hex()])
        if not value:
            return None
        keys = decode_peer_keys(bytes.fromhex(value))[1]
        self._bond_authenticated[name] = bool(keys.ltk and keys.ltk.authenticated)
        return keys

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        found: list[tuple[str, PairingKeys]] = []
        for index in itertools.count():
            value = await self._wire.ask(IRQ_GET_SECRET, [SECRET_PEER, index, None])
            if not value:
                return found
            found.append(decode_peer_keys(bytes.fromhex(value)))
        raise AssertionError("unreachable")

    async def delete(self, name: str) -> None:
        await self._wire.ask(IRQ_SET_SECRET, [SECRET_PEER, name.encode().hex(), None])

    async def delete_all(self) -> None:
        for name, _ in await self.get_all():
            await self.delete(name)


class FirmwareDelegate(PairingDelegate):
    """Pairing as the firmware configured it; the passkey comes from the firmware."""

    def __init__(self, pairing: Pairing, connection: Connection, io: int) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability(io))
        self._pairing = pairing
        self._connection = connection

    async def generate_passkey(self) -> int:
        return await self._pairing.passkey_entry(self._connection)

    async def confirm(self, auto: bool = False) -> bool:
        # Just Works: accepted, as NimBLE does, but the key is unauthenticated.
        self._pairing.just_works(self._connection)
        return True


class Pairing:
    """One boot's pairing: its settings, the passkeys asked for, and what
    each link and stored bond really is."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._security: dict[str, Any] = {"bond": False, "le_secure": False, "mitm": False, "io": 3}
        self._passkeys: dict[int, asyncio.Future[int]] = {}
        # bumble counts every encrypted LE link as authenticated; NimBLE only
        # one keyed by MITM pairing. What each link and stored bond really is:
        self._mitm: dict[int, bool] = {}
        self._bond_authenticated: dict[str, bool] = {}

    def configure(self, security: dict[str, Any]) -> None:
        """The firmware's bond, le_secure, mitm and io settings."""
        self._security.update({k: security[k] for k in self._security})

    def serve(self, device: Device, public_identity: bool) -> None:
        """Pair and bond on device; with public_identity, bonded hosts get
        the unit's public address as its identity."""
        device.keystore = FirmwareKeyStore(self._wire, self._bond_authenticated)

        def config(connection: Connection) -> PairingConfig:
            s = self._security
            return PairingConfig(
                sc=bool(s["le_secure"]),
                mitm=bool(s["mitm"]),
                bonding=bool(s["bond"]),
                delegate=FirmwareDelegate(self, connection, int(s["io"])),
                identity_address_type=PairingConfig.AddressType.PUBLIC if public_identity else None,
            )

        device.pairing_config_factory = config

    async def passkey_entry(self, connection: Connection) -> int:
        """The passkey for this link, from the firmware."""
        self._mitm[connection.handle] = True
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._passkeys[connection.handle] = future
        self._wire.event(IRQ_PASSKEY_ACTION, [connection.handle, PASSKEY_ACTION_DISPLAY, 0])
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        finally:
            self._passkeys.pop(connection.handle, None)

    def just_works(self, connection: Connection) -> None:
        self._mitm[connection.handle] = False

    def passkey(self, conn: int, passkey: int) -> None:
        """The firmware's gap_passkey() for the link conn."""
        future = self._passkeys.get(conn)
        if future is not None and not future.done():
            future.set_result(passkey)

    def watch(self, connection: Connection) -> None:
        """Report the link's encryption to the firmware as NimBLE would."""
        handle = connection.handle

        def really_authenticated() -> bool:
            if handle in self._mitm:  # paired on this link
                return self._mitm[handle]
            return self._bond_authenticated.get(str(connection.peer_address), False)

        def paired(keys: PairingKeys) -> None:
            connection.authenticated = really_authenticated()

        def encryption_changed() -> None:
            authenticated = really_authenticated()
            connection.authenticated = authenticated
            self._wire.event(
                IRQ_ENCRYPTION_UPDATE,
                [
                    handle,
                    bool(connection.is_encrypted),
                    authenticated,
                    # paired here with bonding on, or encrypted with a stored bond
                    (bool(self._security["bond"]) and handle in self._mitm)
                    or str(connection.peer_address) in self._bond_authenticated,
                    connection.encryption_key_size,
                ],
            )

        def disconnected(reason: int) -> None:
            self._mitm.pop(handle, None)

        connection.on(connection.EVENT_DISCONNECTION, disconnected)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encryption_changed)
        connection.on(connection.EVENT_PAIRING, paired)

    def close(self) -> None:
        for future in self._passkeys.values():
            if not future.done():
                future.cancel()
