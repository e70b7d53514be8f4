# The bluetooth emulation on a radio (see bluetooth.py): every call goes, as
# JSON lines, to this unit's device on the virtual radio
# (amrkit.twin.radio_peer), and the device's events come back as IRQs while
# the firmware waits, in real time (_twin.realtime). Imported only by a unit
# on a radio, so that one without compiles none of it.
import json
import select
import socket

import _twin
from _contract import (
    MAC,
    OP_ACTIVE,
    OP_ADDRESS,
    OP_ADVERTISE,
    OP_DISCONNECT,
    OP_NOTIFY,
    OP_PASSKEY,
    OP_REGISTER,
    OP_REPLY,
    OP_RPA,
    OP_SCAN,
    OP_SECURITY,
    OP_WRITE,
)

from amr.contract import (
    ADDR_RPA,
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_GATTS_WRITE,
    IRQ_GET_SECRET,
    IRQ_SCAN_RESULT,
    IRQ_SET_SECRET,
)


def _mv(hex_or_none):
    return None if hex_or_none is None else memoryview(bytes.fromhex(hex_or_none))


class Live:
    """The link to the unit's device, opened at the first call that needs
    it: the stack's first activation."""

    def __init__(self, spec, ble):
        self._spec = spec  # "HOST:PORT"
        self._ble = ble
        self._sock = None
        self._poll = None
        self._buf = b""
        self._events = []

    # -- the stack's calls ---------------------------------------------------------

    def active(self, on, addr):
        if self._sock is not None:
            self._call(OP_ACTIVE, on=on, addr=addr.hex())
        elif on:
            self._open()  # which tells the device

    def rpa(self):
        # Before the link opens, none: _open asks again once it has.
        return None if self._sock is None else bytes.fromhex(self._call(OP_RPA))

    def address(self, addr):
        self._call(OP_ADDRESS, addr=addr.hex())

    def scan(self, interval_us, window_us):
        self._call(OP_SCAN, on=True, interval_us=interval_us, window_us=window_us)

    def scan_stop(self):
        self._call(OP_SCAN, on=False)

    def advertise(self, interval_us, data, connectable, addr):
        self._call(
            OP_ADVERTISE,
            interval_us=interval_us,
            data=data,
            connectable=connectable,
            addr=addr.hex(),
        )

    def advertise_stop(self):
        self._call(OP_ADVERTISE, interval_us=None)

    def register(self, services, config):
        self._call(
            OP_SECURITY,
            bond=config["bond"],
            le_secure=config["le_secure"],
            mitm=config["mitm"],
            io=config["io"],
        )
        return self._call(OP_REGISTER, services=services)

    def write(self, handle, value, update):
        self._call(OP_WRITE, handle=handle, value=value.hex(), update=update)

    def notify(self, conn, handle, value):
        self._call(OP_NOTIFY, conn=conn, handle=handle, value=value.hex())

    def disconnect(self, conn):
        return bool(self._call(OP_DISCONNECT, conn=conn))

    def passkey(self, conn, action, passkey):
        self._call(OP_PASSKEY, conn=conn, action=action, passkey=passkey)

    # -- the link ----------------------------------------------------------------

    def _open(self):
        host, port = self._spec.rsplit(":", 1)
        self._sock = socket.socket()
        self._sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        _twin.realtime(self._pump)
        ble = self._ble
        if ble._active and ble._config["addr_mode"] == ADDR_RPA:
            ble._new_address()  # now from the device
        self._call(OP_ACTIVE, on=ble._active, addr=ble._addr.hex(), mac=_twin.UNIT[MAC])

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

    def _call(self, op, **args):
        if self._sock is None:
            self._open()
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

    def _pump(self, ms):
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
            self._send({"op": OP_REPLY, "id": message["id"], "result": result})
