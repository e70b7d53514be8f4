# Role: the battery gauge. One reading per session of radio work is enough
# (the divider costs 17 ms of CPU current each time); in service mode the
# reading is refreshed on a deadline, so a technician sees it move. It keeps
# the low-battery state with its hysteresis.
from amr import battery, board
from amr.compat import const

_REFRESH_MS = const(5000)


class BatteryGauge:
    def __init__(self, chip, cfg, log):
        self._chip = chip
        self._low_mv = cfg["low_battery_mv"]
        self._floor_mv = cfg["battery_floor_mv"]
        self._log = log
        self._mv = None
        self._at = 0  # RTC ms of the reading
        self.refreshing = False  # service mode: a fresh reading every _REFRESH_MS
        self.low = False

    def millivolts(self):
        if self._mv is None:
            chip = self._chip
            self._mv = battery.millivolts(chip.battery_uv(), board.BATT_DIV_NUM, board.BATT_DIV_DEN)
            self._at = chip.clock_ms()
            self.low = battery.is_low(self._mv, self._low_mv, self.low)
            self._log.say("battery %d mV (%d%%)" % (self._mv, battery.percent(self._mv)))
        return self._mv

    def percent(self):
        return battery.percent(self.millivolts())

    def below_floor(self):
        return self.millivolts() < self._floor_mv

    def has_reading(self):
        """True once a reading was taken this session (frames carry it then)."""
        return self._mv is not None

    def refresh(self):
        """Forget the reading: the next one is taken afresh."""
        self._mv = None

    def deadline(self):
        if not self.refreshing or self._mv is None:
            return None
        return self._at + _REFRESH_MS

    def poll(self, now):
        """True when a fresh reading was taken."""
        due = self.deadline()
        if due is None or now < due:
            return False
        self._mv = None
        self.millivolts()
        return True
