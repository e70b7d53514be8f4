# Driver: the BLE radio through MicroPython's `bluetooth` module.
#
# Every frame goes out non-connectable under a fresh non-resolvable private
# address: the stack is restarted for each new payload, so the address
# changes in the same step as the frame's rolling identifier and nothing
# links two frames. All kinds use the same interval, so it tells nothing.
import bluetooth

from amr.compat import const

_ADDR_NRPA = const(3)  # non-resolvable private address, new at each activation
_INTERVAL_US = const(100000)


class Radio:
    def __init__(self):
        self._ble = bluetooth.BLE()

    def advertise(self, payload):
        ble = self._ble
        if ble.active():
            ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
            ble.active(False)
        ble.active(True)
        ble.config(addr_mode=_ADDR_NRPA)
        ble.gap_advertise(_INTERVAL_US, payload, connectable=False)

    def stop(self):
        if self._ble.active():
            self._ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
            self._ble.active(False)
