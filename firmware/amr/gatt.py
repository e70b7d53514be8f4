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
import bluetooth

from amr.compat import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_SET_SECRET = const(29)
_IRQ_GET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)
_PASSKEY_ACTION_DISPLAY = const(3)
_IO_DISPLAY_ONLY = const(0)
_ADDR_RPA = const(2)
_INTERVAL_US = const(200000)

_FLAG_READ = const(0x0002)
_FLAG_NOTIFY = const(0x0010)
_FLAG_READ_AUTHENTICATED = const(0x0400)
_SECURE_READ = const(0x0402)  # _FLAG_READ | _FLAG_READ_AUTHENTICATED

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
        self._ble = bluetooth.BLE()
        self._passkey = passkey
        self._bonds = bonds
        self._info = info  # (manufacturer, model, firmware, hardware), str each
        self._ad = b""
        self._level = None  # value handle of the battery level
        self._pct = None
        self.connections = set()
        self.open = False
        self.served = False  # a host has connected during this session
        self.notes = []  # what happened, for the app to log outside the IRQ

    def start(self, ad, battery_pct):
        ble = self._ble
        ble.active(True)
        ble.config(addr_mode=_ADDR_RPA, bond=True, le_secure=True, mitm=True, io=_IO_DISPLAY_ONLY)
        ble.irq(self._irq)
        ((self._level,), handles) = ble.gatts_register_services((_BATTERY, _DEVICE_INFO))
        for i in range(len(handles)):
            ble.gatts_write(handles[i], self._info[i].encode())
        self.battery(battery_pct)
        self._ad = ad
        ble.gap_advertise(_INTERVAL_US, ad, connectable=True)
        self.open = True

    def battery(self, pct):
        """Publish the battery level; subscribed hosts are notified of a change."""
        if pct == self._pct:
            return
        self._pct = pct
        # The stubs type handles as memoryview; the port returns ints.
        self._ble.gatts_write(self._level, bytes((pct,)))  # type: ignore[arg-type]
        for conn in self.connections:
            self._ble.gatts_notify(conn, self._level)  # type: ignore[arg-type]

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self.connections.add(data[0])
            self.served = True
            self.notes.append("host connected")
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self.connections.discard(data[0])
            self.notes.append("host disconnected")
            if self.open:  # advertising stops on a connection: back for the next host
                self._ble.gap_advertise(_INTERVAL_US, self._ad, connectable=True)
        elif event == _IRQ_ENCRYPTION_UPDATE:
            _, encrypted, authenticated, bonded, key_size = data
            self.notes.append(
                "link encrypted=%d authenticated=%d bonded=%d key %d bytes"
                % (encrypted, authenticated, bonded, key_size)
            )
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
