"""The low-battery policy: the firmware's two thresholds from the forecast.

Both are loaded cell voltages as the gauge reads them (firmware/amr/gauge.py:
one reading per wake, with the CPU awake and the radio still off, i.e. the
cell under the cpu_active load):

- low_battery_mv (the warning, LOW_BATTERY frames): crossed at least
  WARN_DAYS days of normal use before the end of the unit's life;
- battery_floor_mv (alert retries stop below it): crossed while a final
  reserve remains of RESERVE_DAYS days of normal use plus one full alert
  sequence (an alert nobody acknowledges for UNACKED_MINUTES, measured by
  the twin).

Each is rounded up to 10 mV (up: it is then crossed a little earlier)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from amrkit.paths import firmware_module
from amrkit.power.events import UNACKED_MINUTES, EventCost
from amrkit.power.forecast import Forecast

WARN_DAYS = 30
RESERVE_DAYS = 7


@dataclass
class Thresholds:
    low_battery_mv: int
    battery_floor_mv: int
    warn_days: float  # days of normal use left when the warning comes
    reserve_days: float  # days of normal use the reserve stands for
    reserve_uah: float
    unacked_minutes: int
    firmware_low_battery_mv: int
    firmware_battery_floor_mv: int
    in_range: bool  # both within the firmware config's ranges

    @property
    def firmware_satisfies(self) -> bool:
        """The firmware's defaults warn early enough and keep the reserve."""
        return (
            self.firmware_low_battery_mv >= self.low_battery_mv
            and self.firmware_battery_floor_mv >= self.battery_floor_mv
            and self.firmware_low_battery_mv > self.firmware_battery_floor_mv
        )


def _up10(mv: float) -> int:
    return int(math.ceil(mv / 10) * 10)


def thresholds(fc: Forecast, unacked: EventCost, currents: dict[str, float]) -> Thresholds:
    per_day_at_end = fc.points[-1].uah_per_day
    reserve_uah = RESERVE_DAYS * per_day_at_end + unacked.uah(currents)
    reserve_days = reserve_uah / per_day_at_end
    warn_days = max(WARN_DAYS, reserve_days)  # the warning never after the floor
    low = _up10(fc.gauge_mv_at(fc.dod_at_remaining(warn_days)))
    floor = _up10(fc.gauge_mv_at(fc.dod_at_remaining(reserve_days)))
    if floor >= low:  # a flat stretch of the curve: keep them apart by a step
        low = floor + 10
    fields = {row[0]: (row[2], row[3]) for row in firmware_module("config").FIELDS}
    config = firmware_module("config").DEFAULTS
    in_range = all(
        fields[name][0] <= mv <= fields[name][1]
        for name, mv in (("low_battery_mv", low), ("battery_floor_mv", floor))
    )
    return Thresholds(
        low_battery_mv=low,
        battery_floor_mv=floor,
        warn_days=warn_days,
        reserve_days=reserve_days,
        reserve_uah=reserve_uah,
        unacked_minutes=UNACKED_MINUTES,
        firmware_low_battery_mv=config["low_battery_mv"],
        firmware_battery_floor_mv=config["battery_floor_mv"],
        in_range=in_range,
    )
