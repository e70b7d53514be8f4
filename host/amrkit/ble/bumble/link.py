"""In-process virtual radio for the digital twin and the tests.

A :class:`VirtualRadio` owns one bumble :class:`~bumble.link.LocalLink`; every
bumble :class:`~bumble.controller.Controller` attached to it hears the
advertising PDUs of the others. The radio hands out:

* powered-on bumble hosts (``open_host``) - what the bleak backend scans with;
* virtual beacons (``beacon``) - a bumble device advertising arbitrary AD bytes,
  non-connectable, from a random static address (or, with ``fresh_address``,
  a new non-resolvable private address at every start and payload change);
* a TCP HCI server (``serve_tcp``) - each TCP client gets its own controller on
  the link, so a host in another process attaches with the bumble transport
  ``tcp-client:127.0.0.1:PORT``.

Radios constructed with a name are registered in this process, so the bleak
backend can reach them through the transport string ``virtual:NAME``
(``virtual`` alone means the radio named ``default``).

bumble's ``LocalLink`` schedules deliveries with ``asyncio.get_running_loop()``,
so everything attached to one radio must run on the event loop that created
it. :class:`RadioThread` runs a radio on its own loop in a background thread
for callers (tests, the twin) that want it off their own loop; reach it from
other loops over ``serve_tcp``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import AdvertisingType, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink, StreamPacketSink, StreamPacketSource

logger = logging.getLogger(__name__)

VIRTUAL_SCHEME = "virtual"
DEFAULT_RADIO = "default"

_T = TypeVar("_T")
_radios: dict[str, VirtualRadio] = {}
_counter = itertools.count(1)


def lookup_radio(name: str = DEFAULT_RADIO) -> VirtualRadio:
    """The open radio registered under ``name`` in this process."""
    try:
        return _radios[name]
    except KeyError:
        known = ", ".join(sorted(_radios)) or "none"
        raise LookupError(
            f"no virtual radio named {name!r} in this process (open: {known}); "
            "create VirtualRadio(name=...) first, or attach over tcp-client:"
        ) from None


def radio_for_spec(spec: str) -> VirtualRadio | None:
    """The radio a ``virtual[:NAME]`` transport string names, or None for other specs."""
    scheme, _, name = spec.partition(":")
    if scheme != VIRTUAL_SCHEME:
        return None
    return lookup_radio(name or DEFAULT_RADIO)


class BumbleHost:
    """A powered-on bumble Device, plus whatever has to be released with it."""

    def __init__(
        self, device: Device, release: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.device = device
        self._release = release

    @property
    def address(self) -> str:
        """The device's own random address, in bleak's form (no type suffix)."""
        return self.device.random_address.to_string(False)

    async def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            await release()


async def open_host(spec: str, name: str = "amrkit") -> BumbleHost:
    """Open a bumble transport (or ``virtual:NAME``) and power a host on it."""
    radio = radio_for_spec(spec)
    if radio is not None:
        return await radio.open_host(name)
    transport = await open_transport(spec)
    try:
        device = Device.with_hci(
            name, hci.Address.generate_static_address(), transport.source, transport.sink
        )
        await device.power_on()
    except BaseException:
        await transport.close()
        raise
    return BumbleHost(device, transport.close)


def _retire(controller: Controller) -> None:
    """Take a controller off its link and silence it (bumble has no close)."""
    controller.le_legacy_advertiser.stop()
    for advertising_set in controller.advertising_sets.values():
        advertising_set.stop()
    controller.le_scan_enable = False
    controller.host = None
    if controller in controller.link.controllers:
        controller.link.remove_controller(controller)


class VirtualBeacon:
    """A bumble device advertising raw AD bytes (on a virtual radio or a dongle).

    With `fresh_address`, every start and every change of payload goes out
    under a new non-resolvable private address, as the unit's frames do, so
    nothing on the air links one payload to the next.
    """

    def __init__(
        self,
        host: BumbleHost,
        advertising_type: AdvertisingType,
        interval_ms: float,
        *,
        fresh_address: bool = False,
    ) -> None:
        self.host = host
        self._type = advertising_type
        self._interval_ms = interval_ms
        self._fresh_address = fresh_address
        self.data = b""

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def advertising(self) -> bool:
        device = self.host.device
        return device.legacy_advertising_set is not None or device.legacy_advertiser is not None

    async def start(self, data: bytes | None = None) -> None:
        if data is not None:
            self.data = bytes(data)
        if self._fresh_address:
            await self._new_address()
        await self.host.device.start_advertising(
            advertising_type=self._type,
            own_address_type=hci.OwnAddressType.RANDOM,
            advertising_data=self.data,
            scan_response_data=b"",
            advertising_interval_min=self._interval_ms,
            advertising_interval_max=self._interval_ms,
        )

    async def _new_address(self) -> None:
        """Take a fresh non-resolvable private address for the next start.
        A controller refuses a new random address while it advertises, so
        stop first; extended advertising gives it to the set (start_advertising
        passes the device's), legacy advertising takes it from the controller."""
        device = self.host.device
        await device.stop_advertising()
        device.random_address = hci.Address.generate_private_address()
        if not device.supports_le_extended_advertising:
            await device.send_command(
                hci.HCI_LE_Set_Random_Address_Command(random_address=device.random_address)
            )

    async def set_data(self, data: bytes) -> None:
        """Change the payload; takes effect from the next advertising event
        (with a fresh address: restarts under a new one)."""
        self.data = bytes(data)
        if self._fresh_address:
            if self.advertising:
                await self.start()
            return
        advertising_set = self.host.device.legacy_advertising_set
        if advertising_set is not None:
            await advertising_set.set_advertising_data(self.data)
        elif self.advertising:
            await self.start()

    async def stop(self) -> None:
        await self.host.device.stop_advertising()

    async def close(self) -> None:
        await self.host.close()


# Decides, as an advertising event reaches a listening controller, whether
# that controller hears it: a receiver that listens in scan windows.
Hears = Callable[[], bool]


class _ListeningController(Controller):
    """A controller that hears an advertising PDU only when `hears()` says so
    (connection PDUs always reach it)."""

    def __init__(self, *args: Any, hears: Hears, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hears = hears

    def on_ll_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, ll.AdvInd | ll.AdvExtInd) and not self._hears():
            return
        super().on_ll_advertising_pdu(packet)


class _HciConnection(asyncio.Protocol):
    """One TCP client = one fresh controller on the radio's link."""

    def __init__(self, radio: VirtualRadio, label: str, hears: Hears | None = None) -> None:
        self._radio = radio
        self._label = label
        self._hears = hears
        self._source = StreamPacketSource()
        self.controller: Controller | None = None
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        self.controller = self._radio.add_controller(
            self._label,
            host_source=self._source,
            host_sink=StreamPacketSink(transport),
            hears=self._hears,
        )

    def data_received(self, data: bytes) -> None:
        self._source.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.controller is not None:
            _retire(self.controller)
            self.controller = None
        self._radio._connections.discard(self)


class HciTcpServer:
    """A TCP server whose clients each get an HCI controller on the radio's link."""

    def __init__(self, server: asyncio.Server, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port

    @property
    def spec(self) -> str:
        """The bumble transport string a host in another process opens."""
        return f"tcp-client:{self.host}:{self.port}"

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


class VirtualRadio:
    """One bumble LocalLink and the controllers attached to it.

    With ``name`` the radio is registered in this process and reachable as the
    transport string ``virtual:NAME`` until closed.
    """

    def __init__(self, name: str | None = None) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hosts: list[BumbleHost] = []
        self._servers: list[HciTcpServer] = []
        self._connections: set[_HciConnection] = set()
        if name is not None:
            if name in _radios:
                raise ValueError(f"a virtual radio named {name!r} is already open")
            _radios[name] = self

    @property
    def spec(self) -> str:
        """The transport string for this radio (in this process only)."""
        if self.name is None:
            raise ValueError("an unnamed radio has no transport string; pass name=...")
        return f"{VIRTUAL_SCHEME}:{self.name}"

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this virtual radio belongs to another event loop; "
                "reach it from here with serve_tcp() and a tcp-client: transport"
            )

    def add_controller(
        self,
        label: str | None = None,
        *,
        host_source: Any = None,
        host_sink: Any = None,
        hears: Hears | None = None,
    ) -> Controller:
        """A new controller on this radio's link (call from the radio's loop);
        with `hears`, one that hears an advertising event only when it says so."""
        self._check_loop()
        name = label or f"C{next(_counter)}"
        if hears is not None:
            return _ListeningController(
                name, host_source=host_source, host_sink=host_sink, link=self.link, hears=hears
            )
        return Controller(name, host_source=host_source, host_sink=host_sink, link=self.link)

    async def open_host(self, name: str = "amrkit", address: str | None = None) -> BumbleHost:
        """A powered-on bumble host with its own controller on the link."""
        controller = self.add_controller(name)
        own = hci.Address(address) if address else hci.Address.generate_static_address()
        device = Device(name=name, address=own, host=Host(controller, AsyncPipeSink(controller)))

        async def release() -> None:
            _retire(controller)
            if handle in self._hosts:
                self._hosts.remove(handle)

        handle = BumbleHost(device, release)
        self._hosts.append(handle)
        try:
            await device.power_on()
        except BaseException:
            await handle.close()
            raise
        return handle

    async def beacon(
        self,
        data: bytes,
        *,
        address: str | None = None,
        interval_ms: float = 100.0,
        connectable: bool = False,
        name: str = "beacon",
    ) -> VirtualBeacon:
        """A device advertising ``data`` (raw AD structures, up to 31 bytes), started."""
        host = await self.open_host(name, address)
        kind = (
            AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
            if connectable
            else AdvertisingType.UNDIRECTED
        )
        beacon = VirtualBeacon(host, kind, interval_ms)
        try:
            await beacon.start(data)
        except BaseException:
            await host.close()
            raise
        return beacon

    async def serve_tcp(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        listener: Callable[[], Hears] | None = None,
    ) -> HciTcpServer:
        """Serve HCI over TCP; port 0 picks a free port (see ``.port``/``.spec``).
        With `listener`, each client's controller hears advertising events as
        the predicate listener() makes for it says (a receiver's scan windows)."""
        self._check_loop()
        loop = asyncio.get_running_loop()
        labels = itertools.count(1)

        def protocol() -> _HciConnection:
            hears = listener() if listener is not None else None
            connection = _HciConnection(self, f"tcp{next(labels)}", hears)
            self._connections.add(connection)
            return connection

        server = await loop.create_server(protocol, host, port, family=socket.AF_INET)
        bound = server.sockets[0].getsockname()[1]
        handle = HciTcpServer(server, host, int(bound))
        self._servers.append(handle)
        return handle

    async def close(self) -> None:
        """Stop servers and drop clients, close hosts/beacons, unregister."""
        servers, self._servers = self._servers, []
        for server in servers:
            await server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        for host in list(self._hosts):
            await host.close()
        for controller in list(self.link.controllers):
            _retire(controller)
        await asyncio.sleep(0)  # let transports report connection_lost
        if self.name is not None and _radios.get(self.name) is self:
            del _radios[self.name]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class RadioThread:
    """A :class:`VirtualRadio` on its own event loop in a background thread.

    ``with RadioThread() as rt:`` starts it; ``rt.call(coro)`` runs a coroutine
    on the radio's loop and returns its result; leaving the block closes the
    radio, stops the loop and joins the thread.
    """

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="amr-virtual-radio", daemon=True)
        self._radio: VirtualRadio | None = None

    @property
    def radio(self) -> VirtualRadio:
        if self._radio is None:
            raise RuntimeError("radio thread not started")
        return self._radio

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> Self:
        self._thread.start()

        async def create() -> VirtualRadio:
            return VirtualRadio(self._name)

        self._radio = self.call(create())
        return self

    def submit(self, coro: Coroutine[Any, Any, _T]) -> Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float | None = 10.0) -> _T:
        return self.submit(coro).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await a coroutine run on the radio's loop, from another event loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        if not self._thread.is_alive():
            self._loop.close()
            return
        try:
            if self._radio is not None:
                self.call(self._radio.close())
        finally:

            async def drain() -> None:
                current = asyncio.current_task()
                pending = [t for t in asyncio.all_tasks() if t is not current]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self._loop.shutdown_asyncgens()

            try:
                self.call(drain())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5.0)
                self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
