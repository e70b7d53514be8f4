"""The battery-life forecast for a board and a policy.

Charge per day = deep sleep between events + each event's time in each power
state (events.py: the twin's, or a fallback) times the board's currents, plus
the cell's self-discharge. Over the cell's life the model steps through the
depth of discharge: the boost converter draws constant power, so as the
cell's voltage under each state's load falls (open-circuit voltage down,
internal resistance up) it draws more current; the capacity is derated for
the average load and the temperature (cell.py). Life ends at the earlier of
the capacity's end and the point where the cell, with the bulk capacitor,
can no longer hold the radio's sessions (a heartbeat's advertising, an
alert's burst with its acknowledgement scan, their pulses included) above the
brownout voltage at the policy's temperature (the usable end under load, as
in Nordic/Energizer's pulse-drain paper): from there an alert resets the
chip instead of getting out. Voltages come from the first-order session model (cell.py,
brownout.py): a small capacitor leaves the cell the steady sag, a large one
carries a whole session."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from amrkit.power.cell import Cell, PulseTrain, session_min_mv
from amrkit.power.events import EventCost
from amrkit.power.spec import CURRENT_REF_MV, PowerSpec, radio_timing

DAY_MS = 86_400_000
DAYS_PER_MONTH = 365.25 / 12
STEPS = 400  # depth-of-discharge steps over the cell's life


@dataclass(frozen=True)
class Policy:
    """How a unit is used and configured. Heartbeat jitter, symmetric around
    the interval, does not change the mean rate: it is carried, not costed."""

    heartbeat_h: float = 6.0
    jitter_pct: float = 0.0
    cover: bool = False
    cover_per_day: float = 4.0  # when cover is on (the firmware's 0 means off)
    tx_dbm: int | None = None  # None: the board's production TX power
    alerts_per_month: float = 2.0
    checks_per_month: float = 1.0
    service_per_month: float = 0.0
    temp_c: float = 20.0
    # Between events: deep sleep (every wake a boot), or light sleep with a
    # pin interrupt (every edge seen at once, at the light-sleep current).
    standby: str = "deep_sleep"

    def rates_per_day(self) -> dict[str, float]:
        return {
            "heartbeat": 24 / self.heartbeat_h,
            "alert": self.alerts_per_month / DAYS_PER_MONTH,
            "cover": self.cover_per_day if self.cover else 0.0,
            "store_check": self.checks_per_month / DAYS_PER_MONTH,
            "service_session": self.service_per_month / DAYS_PER_MONTH,
        }

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Budget:
    """Charge per day at the profile's currents (as given, at 3.0 V)."""

    by_event: dict[str, float]  # uAh/day: the standby state, self_discharge, each event
    by_state: dict[str, float]  # uAh/day per power state (self-discharge apart)
    awake_ms_per_day: float

    @property
    def total(self) -> float:
        return sum(self.by_event.values())


def budget(
    spec: PowerSpec, events: dict[str, EventCost], policy: Policy, currents: dict[str, float]
) -> Budget:
    cell = Cell(spec.nominal_mah)
    rates = policy.rates_per_day()
    by_state = dict.fromkeys(currents, 0.0)
    by_event: dict[str, float] = {}
    awake = 0.0
    for name, rate in rates.items():
        event = events[name]
        awake += rate * event.awake_ms
        by_event[name] = rate * event.uah(currents)
        for state, ms in event.ms.items():
            by_state[state] += rate * ms * currents[state] / 3_600_000
    standby = policy.standby
    asleep = max(0.0, DAY_MS - awake) * currents[standby] / 3_600_000
    by_state[standby] += asleep
    by_event = {standby: asleep, **by_event, "self_discharge": cell.self_discharge_ua() * 24}
    return Budget(by_event, {k: v for k, v in by_state.items() if v}, awake)


@dataclass
class LifePoint:
    dod: float
    day: float  # days since the cell went in
    ocv_mv: float
    gauge_mv: float  # what the gauge reads: the cell under the CPU's load after a wake
    radio_mv: float  # the lowest through the radio's sessions (heartbeat, alert burst)
    uah_per_day: float  # with the converter's extra current at this voltage


@dataclass
class Forecast:
    policy: Policy
    budget: Budget
    capacity_mah: float  # derated for the mean load and the temperature
    end_dod: float  # where life ends (capacity, or the usable end under load)
    limited_by: str  # "capacity" or "load"
    days: float
    points: list[LifePoint] = field(default_factory=list)

    @property
    def years(self) -> float:
        return self.days / 365.25

    def remaining_days(self, dod: float) -> float:
        """Days of normal use left at a depth of discharge."""
        return self.days - self.day_at(dod)

    def day_at(self, dod: float) -> float:
        pts = self.points
        for a, b in itertools.pairwise(pts):
            if a.dod <= dod <= b.dod:
                return a.day + (b.day - a.day) * (dod - a.dod) / (b.dod - a.dod)
        return pts[-1].day if dod > pts[-1].dod else 0.0

    def dod_at_remaining(self, days_left: float) -> float:
        """Depth of discharge where days_left of normal use remain (0 if more
        than the whole life)."""
        target = self.days - days_left
        pts = self.points
        if target <= 0:
            return 0.0
        for a, b in itertools.pairwise(pts):
            if a.day <= target <= b.day:
                return a.dod + (b.dod - a.dod) * (target - a.day) / (b.day - a.day)
        return self.end_dod

    def dod_at_gauge(self, mv: float) -> float:
        """Depth of discharge where the gauge first reads below mv (the end
        of life if it never does)."""
        for a, b in itertools.pairwise(self.points):
            if a.gauge_mv >= mv > b.gauge_mv:
                return a.dod + (b.dod - a.dod) * (a.gauge_mv - mv) / (a.gauge_mv - b.gauge_mv)
        return 0.0 if self.points and self.points[0].gauge_mv < mv else self.end_dod

    def gauge_mv_at(self, dod: float) -> float:
        pts = self.points
        for a, b in itertools.pairwise(pts):
            if a.dod <= dod <= b.dod:
                return a.gauge_mv + (b.gauge_mv - a.gauge_mv) * (dod - a.dod) / (b.dod - a.dod)
        return pts[-1].gauge_mv


_STATE_MS = 1000.0  # a stretch of one state, to find the voltage it holds
_GAUGE_MS = 20.0  # the gauge reads this long after the app starts (settle time)


def _node_mv(
    spec: PowerSpec, cell: Cell, dod: float, temp_c: float, trains: list[PulseTrain]
) -> float:
    """The lowest voltage at the cell's terminals (and the bulk capacitor)
    over these stretches, from rest."""
    voc, r = cell.ocv_mv(dod), cell.resistance_ohm(dod, temp_c)
    return session_min_mv(voc, r, spec.bulk_uf, trains, spec.currents_ua["deep_sleep"])


def _scaled(
    spec: PowerSpec,
    cell: Cell,
    currents: dict[str, float],
    dod: float,
    temp_c: float,
    constant_power: bool = True,
) -> dict[str, float]:
    """The state currents at this depth of discharge: the converter draws
    constant power, so ua * 3.0 V / the voltage the cell and capacitor hold
    over a second of that state (one fixed-point step from the constant-
    current sag); below the brownout voltage the chip resets, so it is
    counted at that voltage."""
    if not constant_power:
        return dict(currents)
    out: dict[str, float] = {}
    for state, ua in currents.items():
        v = _node_mv(spec, cell, dod, temp_c, [PulseTrain(_STATE_MS, ua)])
        ua_at_v = ua * CURRENT_REF_MV / max(v, spec.brownout_mv)
        v = _node_mv(spec, cell, dod, temp_c, [PulseTrain(_STATE_MS, ua_at_v)])
        out[state] = ua * CURRENT_REF_MV / max(v, spec.brownout_mv)
    return out


def forecast(
    spec: PowerSpec, events: dict[str, EventCost], policy: Policy, constant_power: bool = True
) -> Forecast:
    """The cell's life for this policy (module doc). Without constant_power
    the currents stay as the profile gives them (a linear regulator's load)."""
    from amrkit.power.brownout import sessions

    cell = Cell(spec.nominal_mah)
    currents = spec.currents_at(policy.tx_dbm)
    radio = list(sessions(spec, radio_timing(), policy.tx_dbm).values())
    gauge = [
        PulseTrain(spec.wake_to_app_ms, currents["boot"]),
        PulseTrain(_GAUGE_MS, currents["cpu_active"]),
    ]
    base = budget(spec, events, policy, currents)
    # The capacity's derating follows the mean load (microamps: none in practice).
    capacity = cell.capacity_mah(base.total / 24, policy.temp_c)
    points: list[LifePoint] = []
    day = 0.0
    end_dod, limited = 1.0, "capacity"
    step = 1.0 / STEPS
    t = policy.temp_c
    for i in range(STEPS + 1):
        dod = i * step
        scaled = _scaled(spec, cell, currents, dod, t, constant_power)
        per_day = budget(spec, events, policy, scaled).total
        adv_mv = min(_node_mv(spec, cell, dod, t, session) for session in radio)
        gauge_mv = _node_mv(spec, cell, dod, t, gauge)
        point = LifePoint(dod, day, cell.ocv_mv(dod), gauge_mv, adv_mv, per_day)
        if adv_mv < spec.brownout_mv and i > 0:
            # The usable end lies in the last step: interpolate on the voltage.
            prev = points[-1]
            frac = (prev.radio_mv - spec.brownout_mv) / (prev.radio_mv - adv_mv)
            end_dod = prev.dod + frac * step
            day = prev.day + frac * step * capacity * 1000 / prev.uah_per_day
            end_gauge = _node_mv(spec, cell, end_dod, t, gauge)
            points.append(
                LifePoint(end_dod, day, cell.ocv_mv(end_dod), end_gauge, spec.brownout_mv, per_day)
            )
            limited = "load"
            break
        if adv_mv < spec.brownout_mv:  # not even a fresh cell holds it
            points.append(point)
            end_dod, limited = 0.0, "load"
            break
        points.append(point)
        if i < STEPS:
            day += step * capacity * 1000 / per_day
    return Forecast(policy, base, capacity, end_dod, limited, points[-1].day, points)
