# Emulation of MicroPython's `bluetooth` module.
#
# When the supervisor attaches the unit to a radio (unit.json "ble":
# "HOST:PORT", as `amr sim` does) the stack is live from its first
# activation: every call goes, as JSON lines, to a bumble device on the
# virtual radio (amrkit.twin.ble_peer) - advertising from the address the
# firmware's addr_mode gives, scanning, GATT server, connections, pairing -
# and the device's events come back as IRQs while the firmware waits, in
# real time (_twin.advance).
#
# Without a radio (VirtualUnit in tests) everything is recorded in the
# unit's event log on the virtual clock, scans hear what the supervisor put
# in air.jsonl, the GATT database works locally and nobody connects.
import json
import os
import select
import socket

import _twin

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
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_GATTS_WRITE,
    IRQ_GET_SECRET,
    IRQ_SCAN_RESULT,
    IRQ_SET_SECRET,
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


def _mv(hex_or_none):
    return None if hex_or_none is None else memoryview(bytes.fromhex(hex_or_none))


class _Peer:
    """The JSON-lines link to this unit's device on the virtual radio."""

    def __init__(self, spec, ble):
        host, port = spec.rsplit(":", 1)
        self._sock = socket.socket()
        self._sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._buf = b""
        self._events = []
        self._ble = ble

    def _send(self, message):
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[self._sock.send(data) :]

    def _line(self, timeout_ms):
        """The next line from the device, or None once timeout_ms passed."""
        while b"\n" not in self._buf:
            if not self._poll.poll(timeout_ms):
                return None
            chunk = self._sock.recv(4096)
            if not chunk:
                raise OSError(107)  # ENOTCONN: the radio went away
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, op, **args):
        args["op"] = op
        self._send(args)
        while True:
            message = self._line(-1)
            if "ev" in message:
                self._events.append(message)  # delivered when the firmware waits
            elif not message.get("ok"):
                raise OSError(message.get("errno", 5))
            else:
                return message.get("result")

    def pump(self, ms):
        """Wait ms of real time, delivering the device's events as IRQs."""
        t = _twin.wall_ms()
        end = t + ms
        while True:
            while self._events:
                self._deliver(self._events.pop(0))
            message = self._line(max(0, end - t))
            if message is not None:
                self._events.append(message)
            t = _twin.wall_ms()
            if message is None or t >= end:
                while self._events:
                    self._deliver(self._events.pop(0))
                return

    def _deliver(self, message):
        event, data = message["ev"], message["data"]
        if event == IRQ_GATTS_WRITE:
            self._ble._values[data[1]] = bytes.fromhex(data[2])
            data = data[:2]
        elif event == IRQ_SET_SECRET:
            data = [data[0], _mv(data[1]), _mv(data[2])]
        elif event == IRQ_SCAN_RESULT:  # (addr type, addr, adv type, rssi, data)
            _twin.record("heard", ad=data[4])
            data = [data[0], _mv(data[1]), data[2], data[3], _mv(data[4])]
        elif event in (IRQ_CENTRAL_CONNECT, IRQ_CENTRAL_DISCONNECT, IRQ_GET_SECRET):
            # central connect/disconnect: (conn, addr type, addr); get: (type, index, key)
            data = [data[0], data[1], _mv(data[2])]
            if event != IRQ_GET_SECRET:
                _twin.record("central", conn=data[0], on=event == IRQ_CENTRAL_CONNECT)
        handler = self._ble._handler
        result = handler(event, tuple(data)) if handler else None
        if "id" in message:
            if isinstance(result, (bytes, bytearray, memoryview)):
                result = bytes(result).hex()
            self._send({"op": "reply", "id": message["id"], "result": result})


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
        self._heard = set()  # air items delivered during this scan
        self._values = {}  # value handle -> bytes: the local GATT database
        self._peer = None
        _twin.tick(self._on_air)

    # -- the live link ---------------------------------------------------------

    def _live(self):
        """The link to the virtual radio, opened on first use; None without one."""
        spec = _twin.UNIT.get("ble")
        if self._peer is None and spec:
            self._peer = _Peer(spec, self)
            _twin.realtime(self._peer.pump)
            if self._active and self._config["addr_mode"] == ADDR_RPA:
                self._new_address()  # the device makes resolvable ones from its IRK
            self._peer.call("active", on=self._active, addr=self._addr.hex(), mac=_twin.UNIT["mac"])
        return self._peer

    def _tell(self, op, **args):
        peer = self._live()
        return peer.call(op, **args) if peer else None

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
        if self._peer is not None:
            self._peer.call("active", on=self._active, addr=self._addr.hex())
        elif self._active:
            self._live()  # opens the link, which activates the device
        return None

    def _draw(self):
        """Tell the cell what the radio draws now."""
        if not self._active:
            _twin.drawing = "cpu_active"
        elif self._scanning:
            _twin.drawing = "scanning"
        else:
            _twin.drawing = "advertising"

    def _new_address(self):
        mode = self._config["addr_mode"]
        if mode == ADDR_PUBLIC:  # the chip's MAC
            self._addr = bytes.fromhex(_twin.UNIT["mac"])
            return
        if mode == ADDR_RPA and self._peer is not None:
            self._addr = bytes.fromhex(self._peer.call("rpa"))
            return
        addr = bytearray(os.urandom(6))
        # Random private addresses: top bits 00 non-resolvable, 11 static, 01 resolvable
        # (without a radio, a stand-in: the bits only).
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
            self._tell("address", addr=self._addr.hex())
        return None

    def irq(self, handler):
        self._handler = handler

    # -- GAP ---------------------------------------------------------------------

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        if duration_ms is None:
            if self._scanning:
                _twin.record("scan_stop")
                self._tell("scan", on=False)
            self._scanning = False
            self._draw()
            return
        if not self._active:
            raise OSError(5)
        self._scanning = True
        self._draw()
        self._heard = set()
        _twin.record("scan", interval_us=interval_us, window_us=window_us)
        self._tell("scan", on=True, interval_us=interval_us, window_us=window_us)

    def _on_air(self, start, end):
        """Without a radio: report what air.jsonl holds for the time scanned
        (one result per item)."""
        if not (self._scanning and self._active and self._handler) or self._peer:
            return
        for i, item in enumerate(_twin.air()):
            if i in self._heard or item["from"] > end or item["to"] < start:
                continue
            self._heard.add(i)
            ad = bytes.fromhex(item["ad"])
            _twin.record("heard", ad=item["ad"])
            self._handler(
                IRQ_SCAN_RESULT,
                (ADDR_RANDOM, memoryview(bytes(6)), ADV_NONCONN_IND, -55, memoryview(ad)),
            )

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(5)  # EIO, as when the stack is not active
        if interval_us is None:
            _twin.record("advertise_stop")
            self._tell("advertise", interval_us=None)
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
        self._tell(
            "advertise",
            interval_us=interval_us,
            data=data,
            connectable=bool(connectable),
            addr=self._addr.hex(),
        )

    def gap_disconnect(self, conn_handle):
        return bool(self._tell("disconnect", conn=conn_handle))

    def gap_passkey(self, conn_handle, action, passkey):
        self._tell("passkey", conn=conn_handle, action=action, passkey=passkey)

    # -- GATT server ---------------------------------------------------------------

    def gatts_register_services(self, services_definition):
        if not self._active:
            raise OSError(5)
        services = [
            [str(uuid), [[str(c[0]), c[1]] for c in chars]] for uuid, chars in services_definition
        ]
        self._tell(
            "security",
            bond=self._config["bond"],
            le_secure=self._config["le_secure"],
            mitm=self._config["mitm"],
            io=self._config["io"],
        )
        handles = self._tell("register", services=services)
        if handles is None:  # no radio: number the values as NimBLE would
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
        self._tell("write", handle=value_handle, value=bytes(data).hex(), update=bool(send_update))

    def gatts_notify(self, conn_handle, value_handle, data=None):
        value = self._values[value_handle] if data is None else bytes(data)
        self._tell("notify", conn=conn_handle, handle=value_handle, value=value.hex())
