# Driver: the BLE radio through MicroPython's `bluetooth` module.
#
# Every frame goes out non-connectable under a fresh non-resolvable private
# address: the stack is restarted for each new payload, so the address
# changes in the same step as the frame's rolling identifier and nothing
# links two frames. All kinds use the same interval, so it tells nothing.
#
# While alerts are pending the radio also scans for acknowledgements, in
# the retries only: a receiver advertises one 10-byte AD structure (0x09,
# 0xFF, 8-byte tag) per alert it has verified; the tags to look for are set
# by the app. Not during an alert's burst: a receiver acknowledges what it
# has verified, and the burst goes on for a phone that has not heard it yet
# whatever a gateway says, so scanning there would only draw the cell: the
# receiver is the unit's largest current, and near the end of its life a
# coin cell could not hold it through a burst (docs/power.md).
from amr import blecore
from amr.compat import const
from amr.contract import ADDR_NRPA, IRQ_SCAN_RESULT

_INTERVAL_US = const(100000)
# The acknowledgement scan: 30 % duty while awake for an alert. A phone
# advertises its acknowledgement every 100 ms plus BLE's 0-10 ms advDelay
# (Android's AdvertisingSetParameters.INTERVAL_LOW), so a 120 ms window
# always holds one of its events whole, and a 1 s retry has two or three
# windows. (30 ms every 100 ms, the same duty, aliases with the phone's
# 100 ms: the ack's phase drifts past the window only by the advDelay, and
# a 1 s retry missed an ack on the air about one time in four.)
_SCAN_INTERVAL_US = const(400000)
_SCAN_WINDOW_US = const(120000)
_ACK_LENGTH = const(10)


class Radio:
    def __init__(self):
        self._ble = blecore.ble()
        blecore.handle((IRQ_SCAN_RESULT,), self._irq)
        self._wanted = {}  # ack tag -> alert id
        self.acked = []  # alert ids whose tag was heard, for the app to collect

    def advertise(self, payload, listen=True):
        """Put payload on the air under a fresh address; with listen, scan
        for the acknowledgements of pending alerts meanwhile."""
        ble = self._ble
        if ble.active():
            ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
            ble.gap_scan(None)  # type: ignore[arg-type]  # None stops (documented)
            ble.active(False)
        ble.active(True)
        ble.config(addr_mode=ADDR_NRPA)  # new at each activation
        ble.gap_advertise(_INTERVAL_US, payload, connectable=False)
        if listen and self._wanted:
            ble.gap_scan(0, _SCAN_INTERVAL_US, _SCAN_WINDOW_US)

    def listen_for(self, tags):
        """Acknowledgement tags to look for (tag -> alert id) from now on."""
        self._wanted = tags

    def _irq(self, event, data):
        adv = data[4]
        if len(adv) == _ACK_LENGTH and adv[0] == 0x09 and adv[1] == 0xFF:
            alert_id = self._wanted.get(bytes(adv[2:]))
            if alert_id is not None and alert_id not in self.acked:
                self.acked.append(alert_id)

    def stop(self):
        if self._ble.active():
            self._ble.gap_advertise(None)  # type: ignore[arg-type]  # None stops (documented)
            self._ble.gap_scan(None)  # type: ignore[arg-type]  # None stops (documented)
            self._ble.active(False)
