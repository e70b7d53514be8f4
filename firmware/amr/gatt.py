# Driver: service mode over BLE, the only time the unit is connectable.
#
# It serves the standard Battery Service (0x180F) and Device Information
# Service (0x180A), and every characteristic needs an authenticated link:
# the host pairs with LE Secure Connections and passkey entry, and the
# passkey the unit "displays" is one that only a holder of its keys can
# compute (amr.frame.Sealer.passkey). Bonded hosts reconnect without it.
#
# Advertising carries flags, the two service UUIDs (common to many devices)
# and a token a key holder resolves to this unit; nobody else can link it
# to the unit's alert frames. The address is resolvable private.
import time

import bluetooth

from amr import blecore
from amr.compat import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)
_PASSKEY_ACTION_DISPLAY = const(3)
_IO_CAPABILITY_DISPLAY_ONLY = const(0)
_ADDR_RPA = const(2)
_INTERVAL_US = const(200000)

_FLAG_READ = const(0x0002)
_FLAG_NOTIFY = const(0x0010)
_FLAG_READ_AUTHENTICATED = const(0x0400)
_SECURE_READ = const(0x0402)  # _FLAG_READ | _FLAG_READ_AUTHENTICATED
_EVENTS = (
    _IRQ_CENTRAL_CONNECT,
    _IRQ_CENTRAL_DISCONNECT,
    _IRQ_ENCRYPTION_UPDATE,
    _IRQ_GET_SECRET,
    _IRQ_SET_SECRET,
    _IRQ_PASSKEY_ACTION,
)

_BATTERY = (
    bluetooth.UUID(0x180F),
    ((bluetooth.UUID(0x2A19), _SECURE_READ | _FLAG_NOTIFY),),  # battery level, %
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


class ServiceLink:
    """Connectable advertising and the GATT server of one service session."""

    def __init__(self, passkey, bonds, info):
        self._ble = blecore.ble()
        self._passkey = passkey
        self._bonds = bonds
        self._info = info  # (manufacturer, model, firmware, hardware), str each
        self._ad = b""
        self._level = None  # value handle of the battery level
        self._pct = None
        self.connections = {}  # conn handle -> ticks when it connected
        self.trusted = set()  # connections with an authenticated (MITM) key
        self.refused = 0  # connections that left or were dropped unauthenticated
        self.open = False
        self.served = False  # an authenticated host came during this session
        self.active = False  # an authenticated host was here since the app last looked
        self.notes = []  # what happened, for the app to log outside the IRQ

    def start(self, ad, battery_pct):
        ble = self._ble
        # The handler first: the stack may ask for stored secrets as it starts.
        blecore.handle(_EVENTS, self._irq)
        ble.config(bond=True, le_secure=True, mitm=True, io=_IO_CAPABILITY_DISPLAY_ONLY)
        ble.active(True)
        ble.config(addr_mode=_ADDR_RPA)
        ((self._level,), handles) = ble.gatts_register_services((_BATTERY, _DEVICE_INFO))
        for i in range(len(handles)):
            ble.gatts_write(handles[i], self._info[i].encode())
        self.battery(battery_pct)
        self._ad = ad
        ble.gap_advertise(_INTERVAL_US, ad, connectable=True)
        self.open = True

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

    def drop_idle(self, now_ticks, grace_ms):
        """Disconnect hosts that have not authenticated within grace_ms."""
        for conn, since in tuple(self.connections.items()):
            if conn not in self.trusted and time.ticks_diff(now_ticks, since) > grace_ms:
                self.notes.append("host dropped: no authenticated pairing")
                self._ble.gap_disconnect(conn)

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self.connections[data[0]] = time.ticks_ms()
            self.notes.append("host connected")
        elif event == _IRQ_CENTRAL_DISCONNECT:
            conn = data[0]
            self.connections.pop(conn, None)
            if conn in self.trusted:
                self.trusted.discard(conn)
            else:
                self.refused += 1
            self.notes.append("host disconnected")
            if self.open:  # advertising stops on a connection: back for the next host
                self._ble.gap_advertise(_INTERVAL_US, self._ad, connectable=True)
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded, key_size = data
            self.notes.append(
                "link encrypted=%d authenticated=%d bonded=%d key %d bytes"
                % (encrypted, authenticated, bonded, key_size)
            )
            if encrypted and authenticated:
                self.trusted.add(conn)
                self.served = True
                self.active = True
            else:  # Just Works: it could not know the passkey
                self._ble.gap_disconnect(conn)
        elif event == _IRQ_PASSKEY_ACTION:
            conn, action, _ = data
            if action == _PASSKEY_ACTION_DISPLAY:
                self._ble.gap_passkey(conn, action, self._passkey)
            else:  # only display is offered (io=DISPLAY_ONLY); refuse anything else
                self._ble.gap_disconnect(conn)
        elif event == _IRQ_SET_SECRET:
            kind, key, value = data
            return self._bonds.set(kind, key, value)
        elif event == _IRQ_GET_SECRET:
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
