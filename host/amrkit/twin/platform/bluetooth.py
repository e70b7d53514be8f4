# Emulation of MicroPython's `bluetooth` module. For now it records what the
# firmware would advertise, with the virtual time, in the unit's event log.
import os

import _twin

FLAG_READ = 0x0002
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010


class UUID:
    def __init__(self, value):
        self._value = value

    def __repr__(self):
        return "UUID(%r)" % (self._value,)


class BLE:
    def __init__(self):
        self._active = False
        self._config = {"addr_mode": 0, "gap_name": "MPY ESP32"}
        self._handler = None
        self._addr = bytes(6)

    def active(self, active=None):
        if active is None:
            return self._active
        self._active = bool(active)
        if self._active:
            self._new_address()
        _twin.record("radio", on=self._active)
        return None

    def _new_address(self):
        mode = self._config["addr_mode"]
        if mode == 0:  # public: the chip's MAC
            self._addr = bytes.fromhex(_twin.UNIT["mac"])
            return
        addr = bytearray(os.urandom(6))
        # Random private addresses: top bits 00 non-resolvable, 11 static, 01 resolvable.
        addr[0] = (addr[0] & 0x3F) | (0x00, 0xC0, 0x40, 0x00)[mode]
        self._addr = bytes(addr)

    def config(self, *args, **kwargs):
        if args:
            return self._config[args[0]]
        self._config.update(kwargs)
        if "addr_mode" in kwargs and self._active:
            self._new_address()
        return None

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(5)  # EIO, as when the stack is not active
        if interval_us is None:
            _twin.record("advertise_stop")
            return
        _twin.record(
            "advertise",
            interval_us=interval_us,
            data=bytes(adv_data or b"").hex(),
            connectable=bool(connectable),
            addr_mode=self._config["addr_mode"],
            addr=self._addr.hex(),
        )
