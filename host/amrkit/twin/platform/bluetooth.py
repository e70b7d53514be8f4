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
        self._scanning = False
        self._heard = set()  # air items delivered during this scan
        _twin.tick(self._on_air)

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

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        if duration_ms is None:
            if self._scanning:
                _twin.record("scan_stop")
            self._scanning = False
            return
        if not self._active:
            raise OSError(5)
        self._scanning = True
        self._heard = set()
        _twin.record("scan", interval_us=interval_us, window_us=window_us)

    def _on_air(self, start, end):
        """Report what was on the air while scanning (one result per item)."""
        if not (self._scanning and self._active and self._handler):
            return
        for i, item in enumerate(_twin.air()):
            if i in self._heard or item["from"] > end or item["to"] < start:
                continue
            self._heard.add(i)
            ad = bytes.fromhex(item["ad"])
            _twin.record("heard", ad=item["ad"])
            self._handler(5, (1, memoryview(bytes(6)), 3, -55, memoryview(ad)))

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
