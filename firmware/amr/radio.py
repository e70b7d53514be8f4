# Driver: the BLE radio through MicroPython's `bluetooth` module.
#
# Frames here are the v0 development frame: kind, alert id and counter in the
# clear under a non-resolvable private address. The authenticated, unlinkable
# v1 frame of docs/protocol.md replaces encode_v0 without changing callers.
import struct

import bluetooth

from amr.compat import const

_ADDR_NRPA = const(3)  # non-resolvable private address, new at each activation
_FAST_US = const(20000)  # alert burst: the fastest legacy advertising interval allowed
_SLOW_US = const(100000)

HEARTBEAT = const(1)
ALERT = const(2)
RETRY = const(3)
SERVICE = const(4)


def encode_v0(kind, alert_id, counter):
    # One AD structure: length, type 0xFF, then the fields.
    return struct.pack("<BBBII", 10, 0xFF, kind, alert_id, counter)


class Radio:
    def __init__(self):
        self._ble = bluetooth.BLE()
        self.frames = 0

    def advertise(self, kind, alert_id, counter, fast):
        ble = self._ble
        if not ble.active():
            ble.active(True)
            ble.config(addr_mode=_ADDR_NRPA)
        ble.gap_advertise(
            _FAST_US if fast else _SLOW_US, encode_v0(kind, alert_id, counter), connectable=False
        )
        self.frames += 1

    def stop(self):
        if self._ble.active():
            self._ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
            self._ble.active(False)
