"""An RFC 2217 server that makes a ``VirtualBoard`` look like a USB-UART port.

Real tools open it as ``rfc2217://127.0.0.1:PORT`` (pyserial's URL handler):
esptool resets it into download mode with DTR/RTS and flashes it, mpremote
(later) talks to the REPL. pyserial's ``PortManager`` does the Telnet and
RFC 2217 negotiation; it is given ``VirtualPort``, which has just the
attributes PortManager reads and writes, and passes DTR/RTS changes on to the
board's auto-reset circuit.

One client at a time, like a serial port: a second connection while one is
open is told BUSY_BANNER and closed at once (as ser2net does). When the
client goes away the lines drop (as a tty close with HUPCL does), so a
client that left RTS asserted releases the chip.

Beside it, the same UART as a plain socket in download mode
(``download_url``, ``socket://``): connecting is the jig's BOOT button held
while EN is pulsed, so the chip waits in its ROM loader, and the bytes flow
with no Telnet layer. esptool reaches it with ``--before no-reset --after
watchdog-reset``. It exists because pyserial's RFC 2217 client polls 50 ms
each time a tool changes the read timeout, which esptool does twice a
command: a cost in the client that no server can shorten, and that a plain
socket does not have.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import serial.rfc2217  # type: ignore[import-untyped]
from amrkit.twin.serial.board import VirtualBoard

log = logging.getLogger("amrkit.twin.serial")

# What a second client is told before the connection closes: ser2net's words,
# which a host can look for to say the port is busy rather than broken.
BUSY_BANNER = b"Port already in use\r\n"


class VirtualPort:
    """The "serial port" PortManager drives: settings are stored, DTR/RTS go
    to the board. Data the client sent is queued in ``pending`` while
    PortManager filters it, and handed to the board before any line change
    that follows it in the stream, so bytes and resets keep their order."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        # Modem status inputs: not wired on a dev board's bridge.
        self.cts = False
        self.dsr = False
        self.ri = False
        self.cd = False
        self.pending = bytearray()

    @property
    def dtr(self) -> bool:
        return self.board.dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self.flush()
        self.board.set_lines(dtr=bool(value))

    @property
    def rts(self) -> bool:
        return self.board.rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self.flush()
        self.board.set_lines(rts=bool(value))

    def flush(self) -> None:
        """Deliver the client's bytes received so far to the chip."""
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            self.board.receive(data)

    def reset_input_buffer(self) -> None:
        pass  # nothing is buffered between the chip and the network

    def reset_output_buffer(self) -> None:
        self.pending.clear()


class _Connection:
    """The socket side PortManager writes to; thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        # An OSError means the client left: the reader thread cleans up.
        with self._lock, contextlib.suppress(OSError):
            self.sock.sendall(data)


class Rfc2217Server:
    """Serves one virtual board on 127.0.0.1 (port 0 picks a free port).

    ``start()`` powers the board on (it boots, like a board plugged into USB)
    and returns the URL; ``stop()`` closes every socket, joins every thread
    and powers the board off. Also a context manager.
    """

    def __init__(self, board: VirtualBoard, host: str = "127.0.0.1", port: int = 0) -> None:
        self.board = board
        self.host = host
        self._requested_port = port
        self.port = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._client: socket.socket | None = None
        self._client_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.connections = 0  # clients served so far
        self._download: socket.socket | None = None
        self._download_thread: threading.Thread | None = None
        self.download_port = 0

    @property
    def url(self) -> str:
        return f"rfc2217://{self.host}:{self.port}"

    @property
    def download_url(self) -> str:
        return f"socket://{self.host}:{self.download_port}"

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(2)
        listener.settimeout(0.05)
        return listener

    def start(self) -> str:
        listener = self._listen(self._requested_port)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._download = self._listen(0)
        self.download_port = self._download.getsockname()[1]
        self.board.power_on()
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(listener, self._serve),
            name=f"rfc2217 accept :{self.port}",
            daemon=True,
        )
        self._accept_thread.start()
        self._download_thread = threading.Thread(
            target=self._accept_loop,
            args=(self._download, self._serve_download),
            name=f"download accept :{self.download_port}",
            daemon=True,
        )
        self._download_thread.start()
        log.info("%s: serving %s", self.board.directory.name, self.url)
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        for thread in (self._accept_thread, self._download_thread):
            if thread is not None:
                thread.join()
        self._accept_thread = self._download_thread = None
        for listener in (self._listener, self._download):
            if listener is not None:
                listener.close()
        self._listener = self._download = None
        with self._lock:
            client, thread = self._client, self._client_thread
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join()
        self.board.power_off()

    def __enter__(self) -> Rfc2217Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- threads -------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                busy = self._client is not None
                if not busy:
                    self._client = sock
                    self.connections += 1
                    self._client_thread = threading.Thread(
                        target=serve,
                        args=(sock,),
                        name=f"rfc2217 client {peer[0]}:{peer[1]}",
                        daemon=True,
                    )
                    self._client_thread.start()
            if busy:
                log.warning("%s: port busy, refusing %s:%s", self.url, *peer)
                with contextlib.suppress(OSError):
                    sock.sendall(BUSY_BANNER)
                sock.close()

    def _pump(self, sock: socket.socket, handle: Callable[[bytes], None]) -> None:
        """Hand what the client sends to `handle` until it leaves or the server stops."""
        while not self._stopping.is_set():
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            handle(data)

    def _serve_download(self, sock: socket.socket) -> None:
        """The plain socket: BOOT held and EN pulsed on connect (esptool's
        classic reset, as the jig's buttons do it), then raw bytes."""
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        board = self.board
        board.attach(_Connection(sock).write)  # a client gone mid-boot loses the bytes
        try:
            board.set_lines(dtr=False, rts=True)  # EN low
            time.sleep(0.1)
            board.set_lines(dtr=True, rts=False)  # EN released with BOOT low: the ROM loader
            time.sleep(0.05)
            board.set_lines(dtr=False, rts=False)  # BOOT released; the loader stays
            self._pump(sock, board.receive)
        except Exception:
            log.exception("%s: download connection failed", self.download_url)
        finally:
            board.attach(None)
            sock.close()
            with self._lock:
                self._client = None
                self._client_thread = None

    def _serve(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock)
        port = VirtualPort(self.board)
        manager = serial.rfc2217.PortManager(port, connection)

        def to_client(data: bytes) -> None:
            connection.write(b"".join(manager.escape(data)))

        def from_client(data: bytes) -> None:
            for byte in manager.filter(data):
                port.pending += byte
            port.flush()

        self.board.attach(to_client)
        try:
            self._pump(sock, from_client)
        except Exception:
            log.exception("%s: client connection failed", self.url)
        finally:
            self.board.attach(None)
            self.board.set_lines(dtr=False, rts=False)  # the tty closed: lines drop
            sock.close()
            with self._lock:
                self._client = None
                self._client_thread = None
