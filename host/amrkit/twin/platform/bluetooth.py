# Emulation of MicroPython's `bluetooth` module.
#
# The BLE object is the stack as the firmware sees it: active or not, its
# config and address, scanning, the IRQ handler and the local GATT values.
# It records what the firmware does in the unit's event log and tells the
# cell what the radio draws. What reaches the air is up to one of two
# backends, chosen once, when the object is made:
#
# - on a radio (unit.json "ble": "HOST:PORT", as `amr sim` does), the live
#   one in _ble_live.py: every call goes to the unit's device on the virtual
#   radio (amrkit.twin.radio_peer) - advertising from the address the
#   firmware's addr_mode gives, scanning, GATT server, connections, pairing -
#   and the device's events come back as IRQs while the firmware waits, in
#   real time;
# - without one (VirtualUnit in tests), _Offline below: scans hear what the
#   supervisor put in air.jsonl, on the virtual clock; nobody connects.
import os

import _twin
from _contract import (
    ADVERTISING,
    AIR_AD,
    AIR_FROM,
    AIR_TO,
    CPU_ACTIVE,
    MAC,
    RADIO,
    SCANNING,
)

from amr.contract import (  # noqa: F401  (FLAG_*: the module's own constants, as on the chip)
    ADDR_PUBLIC,
    ADDR_RANDOM,
    ADDR_RPA,
    ADV_NONCONN_IND,
    FLAG_INDICATE,
    FLAG_NOTIFY,
    FLAG_READ,
    FLAG_WRITE,
    FLAG_WRITE_NO_RESPONSE,
    IRQ_SCAN_RESULT,
)


class UUID:
    def __init__(self, value):
        self._value = value

    def __str__(self):
        if isinstance(self._value, int):
            return "%04x" % self._value
        return str(self._value).lower()

    def __repr__(self):
        return "UUID(%r)" % (self._value,)


class _Offline:
    """No radio: nothing goes on the air and nobody connects; a scan hears
    what air.jsonl holds for the time scanned (one result per item)."""

    def __init__(self, ble):
        self._ble = ble
        self._heard = set()  # air items delivered during this scan
        _twin.tick(self._on_air)

    def active(self, on, addr):
        pass

    def rpa(self):
        return None  # no device to make one: the address gets the bits only

    def address(self, addr):
        pass

    def scan(self, interval_us, window_us):
        self._heard = set()

    def scan_stop(self):
        pass

    def advertise(self, interval_us, data, connectable, addr):
        pass

    def advertise_stop(self):
        pass

    def register(self, services, config):
        """The value handles, numbered as NimBLE would."""
        handles, n = [], 0
        for _, chars in services:
            row = []
            n += 1
            for _, flags in chars:
                n += 2
                row.append(n)
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    n += 1
            handles.append(row)
        return handles

    def write(self, handle, value, update):
        pass

    def notify(self, conn, handle, value):
        pass

    def disconnect(self, conn):
        return False

    def passkey(self, conn, action, passkey):
        pass

    def _on_air(self, start, end):
        ble = self._ble
        if not (ble._scanning and ble._active and ble._handler):
            return
        for i, item in enumerate(_twin.air()):
            if i in self._heard or item[AIR_FROM] > end or item[AIR_TO] < start:
                continue
            self._heard.add(i)
            ad = bytes.fromhex(item[AIR_AD])
            _twin.record("heard", ad=item[AIR_AD])
            ble._handler(
                IRQ_SCAN_RESULT,
                (ADDR_RANDOM, memoryview(bytes(6)), ADV_NONCONN_IND, -55, memoryview(ad)),
            )


_ble = None  # the one BLE object


class BLE:
    """A singleton, as on MicroPython: every BLE() is the same radio."""

    def __new__(cls):
        global _ble
        if _ble is None:
            _ble = object.__new__(cls)
            _ble._setup()
        return _ble

    def __init__(self):
        pass  # set up once, in __new__

    def _setup(self):
        self._active = False
        self._config = {
            "addr_mode": 0,
            "gap_name": "MPY ESP32",
            "bond": False,
            "le_secure": False,
            "mitm": False,
            "io": 3,  # NoInputNoOutput
        }
        self._handler = None
        self._addr = bytes(6)
        self._scanning = False
        self._values = {}  # value handle -> bytes: the local GATT database
        spec = _twin.UNIT.get(RADIO)
        if spec and not _twin.IN_REPL:  # the REPL's readings stay off the air
            from _ble_live import Live

            self._radio = Live(spec, self)
        else:
            self._radio = _Offline(self)

    # -- stack -------------------------------------------------------------------

    def active(self, active=None):
        if active is None:
            return self._active
        self._active = bool(active)
        if self._active:
            _twin.radio_on()
            self._new_address()
        self._draw()
        _twin.record("radio", on=self._active)
        self._radio.active(self._active, self._addr)
        return None

    def _draw(self):
        """Tell the cell what the radio draws now."""
        if not self._active:
            _twin.drawing = CPU_ACTIVE
        elif self._scanning:
            _twin.drawing = SCANNING
        else:
            _twin.drawing = ADVERTISING

    def _new_address(self):
        mode = self._config["addr_mode"]
        if mode == ADDR_PUBLIC:  # the chip's MAC
            self._addr = bytes.fromhex(_twin.UNIT[MAC])
            return
        if mode == ADDR_RPA:
            rpa = self._radio.rpa()  # the device makes them from the unit's IRK
            if rpa is not None:
                self._addr = rpa
                return
        addr = bytearray(os.urandom(6))
        # Random private addresses: top bits 00 non-resolvable, 11 static, 01 resolvable
        # (without a device, a stand-in: the bits only).
        addr[0] = (addr[0] & 0x3F) | (0x00, 0xC0, 0x40, 0x00)[mode]
        self._addr = bytes(addr)

    def config(self, *args, **kwargs):
        if args:
            if args[0] == "mac":
                return (
                    ADDR_PUBLIC if self._config["addr_mode"] == ADDR_PUBLIC else ADDR_RANDOM,
                    self._addr,
                )
            return self._config[args[0]]
        for key in kwargs:
            if key not in self._config:
                raise ValueError("unknown config param")
        self._config.update(kwargs)
        if "addr_mode" in kwargs and self._active:
            self._new_address()
            self._radio.address(self._addr)
        return None

    def irq(self, handler):
        self._handler = handler

    # -- GAP ---------------------------------------------------------------------

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        if duration_ms is None:
            if self._scanning:
                _twin.record("scan_stop")
                self._radio.scan_stop()
            self._scanning = False
            self._draw()
            return
        if not self._active:
            raise OSError(5)
        self._scanning = True
        self._draw()
        _twin.record("scan", interval_us=interval_us, window_us=window_us)
        self._radio.scan(interval_us, window_us)

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(5)  # EIO, as when the stack is not active
        if interval_us is None:
            _twin.record("advertise_stop")
            self._radio.advertise_stop()
            return
        data = bytes(adv_data or b"").hex()
        _twin.record(
            "advertise",
            interval_us=interval_us,
            data=data,
            connectable=bool(connectable),
            addr_mode=self._config["addr_mode"],
            addr=self._addr.hex(),
        )
        self._radio.advertise(interval_us, data, bool(connectable), self._addr)

    def gap_disconnect(self, conn_handle):
        return self._radio.disconnect(conn_handle)

    def gap_passkey(self, conn_handle, action, passkey):
        self._radio.passkey(conn_handle, action, passkey)

    # -- GATT server ---------------------------------------------------------------

    def gatts_register_services(self, services_definition):
        if not self._active:
            raise OSError(5)
        services = [
            [str(uuid), [[str(c[0]), c[1]] for c in chars]] for uuid, chars in services_definition
        ]
        handles = self._radio.register(services, self._config)
        for row in handles:
            for handle in row:
                self._values[handle] = b""
        return tuple(tuple(row) for row in handles)

    def gatts_read(self, value_handle):
        return self._values[value_handle]

    def gatts_write(self, value_handle, data, send_update=False):
        if value_handle not in self._values:
            raise OSError(22)  # EINVAL: no such attribute
        self._values[value_handle] = bytes(data)
        self._radio.write(value_handle, self._values[value_handle], bool(send_update))

    def gatts_notify(self, conn_handle, value_handle, data=None):
        value = self._values[value_handle] if data is None else bytes(data)
        self._radio.notify(conn_handle, value_handle, value)
