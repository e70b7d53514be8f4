"""Pairing and bonding on a unit's device, as its firmware configured them
(``config(bond=, le_secure=, mitm=, io=)``). Pairing secrets never stay
here: the key store hands them to the firmware, which keeps them in its own
flash as MicroPython does (_IRQ_SET_SECRET, _IRQ_GET_SECRET), and the
passkey comes from the firmware (_IRQ_PASSKEY_ACTION, answered by
gap_passkey).

The security manager refuses what NimBLE's does (ble_sm.c, on the pairing
request): a maximum key size outside 7..16 bytes and, in the production
image's Secure Connections Only mode (CONFIG_BT_NIMBLE_SM_SC_ONLY, see
firmware/image/), a host that does not offer LE Secure Connections
(Authentication Requirements) or a key shorter than 16 bytes (Encryption
Key Size). The stock deployment has no such mode: the key is negotiated
down to what the host asks, and the firmware sees its size in
_IRQ_ENCRYPTION_UPDATE."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bumble.att import ATT_CID
from bumble.device import Connection, Device
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.smp import AuthReq, ErrorCode, Session, SMP_Pairing_Request_Command

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

KEY_SIZE_MIN = 7  # bytes: the shortest key the specification allows (BLE_SM_PAIR_KEY_SZ_MIN)
KEY_SIZE_MAX = 16


@dataclass
class Bond:
    """What NimBLE keeps of a bond besides the keys, and reports when it encrypts."""

    authenticated: bool
    key_size: int


def encode_peer_keys(name: str, keys: PairingKeys, key_size: int = KEY_SIZE_MAX) -> bytes:
    """What the firmware keeps for one bonded peer: name, then the LTK and
    the peer's IRK (LE Secure Connections distributes no more), then the
    key's size if it is short."""
    raw = name.encode()
    flags = 0
    body = b""
    if keys.ltk is not None:
        flags |= 1 | (2 if keys.ltk.authenticated else 0)
        body += keys.ltk.value
    if keys.irk is not None:
        flags |= 4
        body += keys.irk.value
    if key_size != KEY_SIZE_MAX:
        flags |= 8
        body += bytes((key_size,))
    return bytes((len(raw),)) + raw + bytes((flags,)) + body


def decode_peer_keys(data: bytes) -> tuple[str, PairingKeys, int]:
    """The peer's name, its keys and the key's size."""
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
        rest = rest[16:]
    return name, keys, rest[0] if flags & 8 else KEY_SIZE_MAX


def refusal(request: SMP_Pairing_Request_Command, sc_only: bool) -> ErrorCode | None:
    """Why NimBLE refuses this pairing request, or None (ble_sm_pair_req_rx)."""
    size = request.maximum_encryption_key_size
    if size < KEY_SIZE_MIN:
        return ErrorCode.ENCRYPTION_KEY_SIZE
    if size > KEY_SIZE_MAX:
        return ErrorCode.INVALID_PARAMETERS
    if sc_only and not request.auth_req & AuthReq.SC:
        return ErrorCode.AUTHENTICATION_REQUIREMENTS
    if sc_only and size != KEY_SIZE_MAX:
        return ErrorCode.ENCRYPTION_KEY_SIZE
    return None


class FirmwareKeyStore(KeyStore):
    """Bonding keys kept by the firmware (in its NVS), asked for over the wire."""

    def __init__(self, wire: Wire, bonds: dict[str, Bond], key_sizes: dict[str, int]) -> None:
        self._wire = wire
        self._bonds = bonds  # what the stored bonds read so far are
        self._key_sizes = key_sizes  # the key size each peer just paired with

    async def update(self, name: str, keys: PairingKeys) -> None:
        value = encode_peer_keys(name, keys, self._key_sizes.get(name, KEY_SIZE_MAX))
        stored = await self._wire.ask(
            IRQ_SET_SECRET, [SECRET_PEER, name.encode().hex(), value.hex()]
        )
        if not stored:
            log.warning("the unit did not keep the bond with %s", name)

    async def get(self, name: str) -> PairingKeys | None:
        value = await self._wire.ask(IRQ_GET_SECRET, [SECRET_PEER, 0, name.encode().hex()])
        if not value:
            return None
        _, keys, key_size = decode_peer_keys(bytes.fromhex(value))
        self._bonds[name] = Bond(bool(keys.ltk and keys.ltk.authenticated), key_size)
        return keys

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        found: list[tuple[str, PairingKeys]] = []
        for index in itertools.count():
            value = await self._wire.ask(IRQ_GET_SECRET, [SECRET_PEER, index, None])
            if not value:
                return found
            name, keys, _ = decode_peer_keys(bytes.fromhex(value))
            found.append((name, keys))
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
        self.pairing = pairing
        self._connection = connection

    async def generate_passkey(self) -> int:
        return await self.pairing.passkey_entry(self._connection)

    async def confirm(self, auto: bool = False) -> bool:
        # Just Works: accepted, as NimBLE does, but the key is unauthenticated.
        self.pairing.just_works(self._connection)
        return True


class NimbleSession(Session):
    """bumble's SMP session as the unit's responder: it refuses the pairing
    requests NimBLE refuses, and the key is as long as the host asked (bumble
    leaves the size to the controller, which reports none)."""

    @property
    def _pairing(self) -> Pairing:
        delegate = self.pairing_config.delegate
        assert isinstance(delegate, FirmwareDelegate)
        return delegate.pairing

    def on_smp_pairing_request_command(self, command: SMP_Pairing_Request_Command) -> None:
        error = self._pairing.refusal(command)
        if error is not None:
            log.info("pairing refused as NimBLE would: %s", error.name)
            self.send_pairing_failed(error)
            return
        self._pairing.negotiated(self.connection, command.maximum_encryption_key_size)
        super().on_smp_pairing_request_command(command)

    async def on_pairing(self) -> None:
        peer = self.peer_bd_addr or self.connection.peer_address
        self._pairing.bonding(self.connection, str(peer))  # the key store keeps its size
        await super().on_pairing()


class Pairing:
    """One boot's pairing: its settings, the passkeys asked for, and what
    each link and stored bond really is."""

    _deliver: Callable[[int, bytes], Any]  # the device's own ATT handler (serve)

    def __init__(self, wire: Wire, sc_only: bool) -> None:
        self._wire = wire
        self._sc_only = sc_only  # the image's Secure Connections Only mode
        self._security: dict[str, Any] = {"bond": False, "le_secure": False, "mitm": False, "io": 3}
        self._passkeys: dict[int, asyncio.Future[int]] = {}
        # bumble counts every encrypted LE link as authenticated; NimBLE only
        # one keyed by MITM pairing. What each link and stored bond really is:
        self._mitm: dict[int, bool] = {}
        self._key_size: dict[int, int] = {}  # links paired here: the negotiated size
        self._bond_key_size: dict[str, int] = {}  # peers bonding now: their key's size
        self._bonds: dict[str, Bond] = {}
        # ATT requests held while the firmware handles a link's encryption (on
        # the chip its IRQ handler runs in the host task: nothing else on the
        # link is served until it returns, gap_disconnect included).
        self._held: dict[int, list[bytes]] = {}
        self._reports: set[asyncio.Task[None]] = set()

    def configure(self, security: dict[str, Any]) -> None:
        """The firmware's bond, le_secure, mitm and io settings."""
        self._security.update({k: security[k] for k in self._security})

    def refusal(self, request: SMP_Pairing_Request_Command) -> ErrorCode | None:
        return refusal(request, self._sc_only)

    def negotiated(self, connection: Connection, max_key_size: int) -> None:
        """The host asked for at most max_key_size bytes; the unit offers 16."""
        self._key_size[connection.handle] = min(max_key_size, KEY_SIZE_MAX)

    def bonding(self, connection: Connection, name: str) -> None:
        self._bond_key_size[name] = self._key_size.get(connection.handle, KEY_SIZE_MAX)

    def serve(self, device: Device, public_identity: bool) -> None:
        """Pair and bond on device; with public_identity, bonded hosts get
        the unit's public address as its identity."""
        device.keystore = FirmwareKeyStore(self._wire, self._bonds, self._bond_key_size)
        device.smp_session_proxy = NimbleSession
        deliver = device.on_gatt_pdu

        def att(handle: int, pdu: bytes) -> None:
            held = self._held.get(handle)
            if held is None:
                deliver(handle, pdu)
            else:
                held.append(pdu)

        device.l2cap_channel_manager.register_fixed_channel(ATT_CID, att)
        self._deliver = deliver

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

        def bond() -> Bond | None:
            return self._bonds.get(str(connection.peer_address))

        def really_authenticated() -> bool:
            if handle in self._mitm:  # paired on this link
                return self._mitm[handle]
            stored = bond()
            return stored is not None and stored.authenticated

        def key_size() -> int:
            if handle in self._key_size:  # paired on this link
                return self._key_size[handle]
            stored = bond()
            return 0 if stored is None else stored.key_size

        def paired(keys: PairingKeys) -> None:
            connection.authenticated = really_authenticated()

        def encryption_changed() -> None:
            authenticated = really_authenticated()
            connection.authenticated = authenticated
            data = [
                handle,
                bool(connection.is_encrypted),
                authenticated,
                # paired here with bonding on, or encrypted with a stored bond
                (bool(self._security["bond"]) and handle in self._mitm) or bond() is not None,
                key_size(),
            ]
            self._held.setdefault(handle, [])
            task = asyncio.get_running_loop().create_task(self._report(handle, data))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

        def disconnected(reason: int) -> None:
            self._mitm.pop(handle, None)
            self._key_size.pop(handle, None)
            self._held.pop(handle, None)

        connection.on(connection.EVENT_DISCONNECTION, disconnected)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encryption_changed)
        connection.on(connection.EVENT_PAIRING, paired)

    async def _report(self, handle: int, data: list[Any]) -> None:
        """_IRQ_ENCRYPTION_UPDATE, then the link's held requests, unless the
        firmware's handler dropped it."""
        try:
            await self._wire.ask(IRQ_ENCRYPTION_UPDATE, data)
        except TimeoutError:
            log.warning("the firmware did not handle the encryption of link %d", handle)
        for pdu in self._held.pop(handle, None) or ():
            self._deliver(handle, pdu)

    def close(self) -> None:
        for future in self._passkeys.values():
            if not future.done():
                future.cancel()
