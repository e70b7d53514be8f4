# Driver: service mode over BLE, the only time the unit is connectable.
#
# It serves the standard Battery Service (0x180F) and Device Information
# Service (0x180A), and every characteristic needs an authenticated link:
# the host pairs with LE Secure Connections and passkey entry, and the
# passkey the unit "displays" is one that only a holder of its keys can
# compute (amr.frame.Sealer.passkey). Bonded hosts reconnect without it.
# A link is trusted only once encrypted with an authenticated key of 16
# bytes: stock MicroPython's NimBLE negotiates down to the 7 bytes a host
# may ask for and still falls back to legacy pairing; the production image
# refuses both in its security manager (firmware/image/, SC-only mode).
#
# The service commands (amr/commands.py) are reached through one control
# point, in a service of its own: an authenticated host writes a command's
# name (then a 0 byte and its argument, if any); the reply, a JSON object,
# comes back by notification in chunks of at most _CHUNK bytes after a
# one-byte header: the chunk's index, with 0x80 set on the last. Only an
# authenticated link may write (the stack refuses others, and the handler
# ignores them too).
#
# Advertising carries only a nonce and the token a key holder resolves to
# this unit for it (amr.frame.service_ad); nobody else can link it to the
# unit's frames. The address is resolvable private, so bonded hosts know
# the unit. While no host is connected the app moves it to a new nonce and
# a new address every few seconds (rotate): the stack is restarted, as for
# a routine frame, so the address changes in the same step as the nonce.
import time

import bluetooth

from amr import blecore
from amr.compat import const
from amr.contract import (
    ADDR_RPA,
    CHUNK_LAST,
    CONTROL_POINT_UUID,
    CONTROL_SERVICE_UUID,
    FLAG_NOTIFY,
    FLAG_READ,
    FLAG_READ_AUTHENTICATED,
    FLAG_WRITE,
    FLAG_WRITE_AUTHENTICATED,
    IO_CAPABILITY_DISPLAY_ONLY,
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_ENCRYPTION_UPDATE,
    IRQ_GATTS_WRITE,
    IRQ_GET_SECRET,
    IRQ_PASSKEY_ACTION,
    IRQ_SET_SECRET,
    PASSKEY_ACTION_DISPLAY,
)

_INTERVAL_US = const(200000)
# Before the stack restarts for a new address: a host that connected just
# before advertising stopped reports in (its IRQ runs while we wait).
_SETTLE_MS = const(10)
_SECURE_READ = FLAG_READ | FLAG_READ_AUTHENTICATED
_CHUNK = const(19)  # fits the default ATT MTU (23) with the header
_COMMAND_MAX = const(64)  # longest command (name, separator, argument) taken
_KEY_SIZE = const(16)  # bytes: the only encryption key size trusted
_EVENTS = (
    IRQ_GATTS_WRITE,
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_ENCRYPTION_UPDATE,
    IRQ_GATTS_WRITE,
    IRQ_GET_SECRET,
    IRQ_SET_SECRET,
    IRQ_PASSKEY_ACTION,
)

_BATTERY = (
    bluetooth.UUID(0x180F),
    ((bluetooth.UUID(0x2A19), _SECURE_READ | FLAG_NOTIFY),),  # battery level, %
)
_DEVICE_INFO = (
    bluetooth.UUID(0x180A),
    (
        (bluetooth.UUID(0x2A29), _SECURE_READ),  # manufacturer name
        (bluetooth.UUID(0x2A24), _SECURE_READ),  # model number: the board
        (bluetooth.UUID(0x2A26), _SECURE_READ),  # firmware revision
        (bluetooth.UUID(0x2A27), _SECURE_READ),  # hardware revision: the chip
    ),
)
_CONTROL = (
    bluetooth.UUID(CONTROL_SERVICE_UUID),
    (
        (
            bluetooth.UUID(CONTROL_POINT_UUID),
            FLAG_WRITE | FLAG_WRITE_AUTHENTICATED | FLAG_NOTIFY,
        ),
    ),
)


class ServiceLink:
    """Connectable advertising and the GATT server of one service session."""

    def __init__(self, bonds, info):
        self._ble = blecore.ble()
        self._passkey = 0  # of the advertisement on the air
        self._bonds = bonds
        self._info = info  # (manufacturer, model, firmware, hardware), str each
        self._ad = b""
        self._level = None  # value handle of the battery level
        self._control = None  # value handle of the command control point
        self._pct = None
        self.connections = {}  # conn handle -> ticks when it connected
        self.trusted = set()  # connections with an authenticated (MITM) key
        self.refused = 0  # connections that left or were dropped unauthenticated
        self.open = False
        self.served = False  # an authenticated host came during this session
        self.active = False  # an authenticated host was here since the app last looked
        self.notes = []  # what happened, for the app to log outside the IRQ
        self.requests = []  # (conn, command name) written by authenticated hosts

    def start(self, ad, passkey, battery_pct):
        """Serve and advertise `ad`; a host that connects to it pairs with `passkey`."""
        # The handler first: the stack may ask for stored secrets as it starts.
        blecore.handle(_EVENTS, self._irq)
        self._ble.config(bond=True, le_secure=True, mitm=True, io=IO_CAPABILITY_DISPLAY_ONLY)
        self._pct = battery_pct
        self._up(ad, passkey)
        self.open = True

    def rotate(self, ad, passkey):
        """Advertise `ad` under a new address from now on, unless a host is
        connected (then False: advertising is stopped while it is)."""
        ble = self._ble
        if self.connections:
            return False
        ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
        time.sleep_ms(_SETTLE_MS)
        if self.connections:
            return False
        ble.active(False)
        self._up(ad, passkey)
        return True

    def _up(self, ad, passkey):
        """The stack on under a fresh resolvable private address, the services
        registered and filled in, and `ad` advertised."""
        ble = self._ble
        ble.active(True)
        ble.config(addr_mode=ADDR_RPA)
        ((self._level,), handles, (self._control,)) = ble.gatts_register_services(
            (_BATTERY, _DEVICE_INFO, _CONTROL)
        )
        for i in range(len(handles)):
            ble.gatts_write(handles[i], self._info[i].encode())
        # The stubs type handles as memoryview; the port returns ints.
        ble.gatts_write(self._level, bytes((self._pct,)))  # type: ignore[arg-type]
        self._ad = ad
        self._passkey = passkey
        ble.gap_advertise(_INTERVAL_US, ad, connectable=True)

    def battery(self, pct):
        """Publish the battery level; authenticated hosts are notified of a
        change (a notification goes out whether or not a host subscribed)."""
        if pct == self._pct:
            return
        self._pct = pct
        # The stubs type handles as memoryview; the port returns ints.
        self._ble.gatts_write(self._level, bytes((pct,)))  # type: ignore[arg-type]
        for conn in self.trusted:
            self._ble.gatts_notify(conn, self._level)  # type: ignore[arg-type]

    def reply(self, conn, data):
        """Send a command's reply to the host that asked, by notification."""
        count = (len(data) + _CHUNK - 1) // _CHUNK or 1
        for i in range(count):
            head = i | (CHUNK_LAST if i == count - 1 else 0)
            chunk = bytes((head,)) + data[i * _CHUNK : (i + 1) * _CHUNK]
            # The stubs miss gatts_notify's conn_handle (documented first argument).
            self._ble.gatts_notify(conn, self._control, chunk)  # type: ignore[call-arg, arg-type]

    def drop_idle(self, now_ticks, grace_ms):
        """Disconnect hosts that have not authenticated within grace_ms."""
        for conn, since in tuple(self.connections.items()):
            if conn not in self.trusted and time.ticks_diff(now_ticks, since) > grace_ms:
                self.notes.append("host dropped: no authenticated pairing")
                self._ble.gap_disconnect(conn)

    def _irq(self, event, data):
        if event == IRQ_GATTS_WRITE:
            conn, handle = data[0], data[1]
            if handle == self._control and conn in self.trusted:
                value = bytes(self._ble.gatts_read(handle))
                self.requests.append((conn, value[:_COMMAND_MAX]))
                self.active = True
        elif event == IRQ_CENTRAL_CONNECT:
            self.connections[data[0]] = time.ticks_ms()
            self.notes.append("host connected")
        elif event == IRQ_CENTRAL_DISCONNECT:
            conn = data[0]
            self.connections.pop(conn, None)
            if conn in self.trusted:
                self.trusted.discard(conn)
            else:
                self.refused += 1
            self.notes.append("host disconnected")
            if self.open:  # advertising stops on a connection: back for the next host
                self._ble.gap_advertise(_INTERVAL_US, self._ad, connectable=True)
        elif event == IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded, key_size = data
            self.notes.append(
                "link encrypted=%d authenticated=%d bonded=%d key %d bytes"
                % (encrypted, authenticated, bonded, key_size)
            )
            if encrypted and authenticated and key_size >= _KEY_SIZE:
                self.trusted.add(conn)
                self.served = True
                self.active = True
                return None
            # Dropped, and counted as refused when it leaves.
            self.trusted.discard(conn)
            if not (encrypted and authenticated):  # Just Works: it could not know the passkey
                self.notes.append("host refused: link not authenticated")
            else:  # a weak stack, or one that weakens the link on purpose
                self.notes.append("host refused: key %d bytes, %d needed" % (key_size, _KEY_SIZE))
            self._ble.gap_disconnect(conn)
        elif event == IRQ_PASSKEY_ACTION:
            conn, action, _ = data
            if action == PASSKEY_ACTION_DISPLAY:
                self._ble.gap_passkey(conn, action, self._passkey)
            else:  # only display is offered (io=DISPLAY_ONLY); refuse anything else
                self._ble.gap_disconnect(conn)
        elif event == IRQ_SET_SECRET:
            kind, key, value = data
            return self._bonds.set(kind, key, value)
        elif event == IRQ_GET_SECRET:
            kind, index, key = data
            return self._bonds.get(kind, index, key)
        return None

    def stop(self):
        ble = self._ble
        self.open = False
        for conn in tuple(self.connections):
            ble.gap_disconnect(conn)
        ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
        ble.active(False)
        blecore.release(_EVENTS)
