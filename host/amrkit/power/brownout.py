"""Brownout check: the lowest cell voltage during the radio's worst pulses,
over the cell's life and in the cold, against the board's brownout voltage.

The firmware never disables the brownout detector, so a sag below the
board's brownout_mv resets the chip. Two sessions, each after a wake (boot
at the boot current), the bulk capacitor charged at rest (deep sleep) before:

- advertising: a heartbeat's advertising window (firmware/amr/air.py), one
  ~3 ms advertising event at the profile's peak_ua.advertising every
  advertising interval (firmware/amr/radio.py _INTERVAL_US), the current
  between events such that the mean is the profile's advertising current;
- scanning: an alert: its burst (config burst_ms, advertising events as
  above), asleep until the first retry (config retry_first_s), then the
  retry's advertising with the acknowledgement scan: a window of
  _SCAN_WINDOW_US at peak_ua.scanning every _SCAN_INTERVAL_US, advertising
  (its mean current) in between. The burst does not scan (radio.py).

A heartbeat goes out to the end of the cell's life; an alert only while the
gauge reads above the firmware's battery floor (alert.py sends nothing below
it), so each session is judged up to the depth of discharge where the
firmware still runs it.

Pulses are constant-current (first order: the boost converter draws more as
the voltage falls, so the true sag near the threshold is a little deeper).
Each session starts from a capacitor charged at rest."""

from __future__ import annotations

from dataclasses import dataclass

from amrkit.power.cell import Cell, PulseTrain, session_min_mv
from amrkit.power.spec import ADV_EVENT_MS, PowerSpec, RadioTiming

COLD_C = -10.0  # the check's cold case: a unit carried outdoors in winter
_GRID = 200
_MAX_UF = 10_000_000.0  # 10 F: beyond any capacitor that fits a button


def sessions(
    spec: PowerSpec, timing: RadioTiming, tx_dbm: int | None
) -> dict[str, list[PulseTrain]]:
    currents = spec.currents_at(tx_dbm)
    adv = currents["advertising"]
    # The profile's peak is at its own TX power; another scales with the mean.
    peak = spec.peak_ua["advertising"] * adv / spec.currents_ua["advertising"]
    period = timing.adv_interval_ms
    between = (adv * period - peak * ADV_EVENT_MS) / (period - ADV_EVENT_MS)
    between = min(adv, max(0.0, between))
    boot = PulseTrain(spec.wake_to_app_ms, currents["boot"])

    def advertising(ms: float) -> PulseTrain:
        return PulseTrain(ms, between, peak, ADV_EVENT_MS, period)

    return {
        "advertising": [boot, advertising(timing.heartbeat_advertise_ms)],
        "scanning": [
            boot,
            advertising(timing.burst_ms),
            PulseTrain(timing.retry_first_ms, currents["deep_sleep"]),
            boot,
            PulseTrain(
                timing.retry_advertise_ms,
                adv,
                spec.peak_ua["scanning"],
                timing.scan_window_ms,
                timing.scan_interval_ms,
            ),
        ],
    }


@dataclass
class Brownout:
    temp_c: float
    cold_c: float
    brownout_mv: float
    bulk_uf: float
    end_dod: float
    min_mv: dict[str, float]  # per session, at its last DoD (alerts_until_dod) in the cold
    margin_mv: float  # the worst session's, at its last DoD in the cold
    fresh_margin_mv: float  # the worst session's, a fresh cell at temp_c
    browns_out_at_dod: float | None  # first depth of discharge with a reset, cold
    browns_out_at_dod_warm: float | None  # the same at temp_c
    worst_session: str
    alerts_until_dod: float  # alerts go out to here: the gauge above the floor
    bulk_uf_needed: float | None  # to end of life in the cold; None: none fits
    curve: list[tuple[float, float, float]]  # (dod, worst min mV at temp_c, at cold)

    @property
    def ok(self) -> bool:
        return self.margin_mv >= 0


def _worst(
    cell: Cell,
    trains: dict[str, list[PulseTrain]],
    dod: float,
    temp_c: float,
    c_uf: float,
    rest_ua: float,
) -> dict[str, float]:
    voc, r = cell.ocv_mv(dod), cell.resistance_ohm(dod, temp_c)
    return {name: session_min_mv(voc, r, c_uf, t, rest_ua) for name, t in trains.items()}


def check(
    spec: PowerSpec,
    timing: RadioTiming,
    end_dod: float,
    temp_c: float,
    tx_dbm: int | None = None,
    cold_c: float = COLD_C,
    alerts_until_dod: float | None = None,
) -> Brownout:
    """alerts_until_dod: where the gauge crosses the firmware's battery floor
    (the end of life if None)."""
    cell = Cell(spec.nominal_mah)
    trains = sessions(spec, timing, tx_dbm)
    rest = spec.currents_ua["deep_sleep"]
    c = spec.bulk_uf
    until = {
        name: end_dod if name == "advertising" else min(end_dod, alerts_until_dod or end_dod)
        for name in trains
    }
    curve = []
    first_cold = first_warm = None
    for i in range(_GRID + 1):
        dod = i / _GRID
        warm = min(_worst(cell, trains, dod, temp_c, c, rest).values())
        cold = min(_worst(cell, trains, dod, cold_c, c, rest).values())
        curve.append((dod, warm, cold))
        if first_cold is None and cold < spec.brownout_mv:
            first_cold = dod
        if first_warm is None and warm < spec.brownout_mv:
            first_warm = dod

    def first_below(temp: float) -> float:
        """The depth of discharge (to 0.001) where the worst session first
        dips below the brownout voltage, knowing it does by end_dod."""
        lo, hi = 0.0, end_dod
        while hi - lo > 0.001:
            mid = (lo + hi) / 2
            below = min(_worst(cell, trains, mid, temp, c, rest).values()) < spec.brownout_mv
            lo, hi = (lo, mid) if below else (mid, hi)
        return round(hi, 3)

    at_end = {
        name: _worst(cell, {name: t}, until[name], cold_c, c, rest)[name]
        for name, t in trains.items()
    }
    if min(_worst(cell, trains, end_dod, cold_c, c, rest).values()) < spec.brownout_mv:
        first_cold = first_below(cold_c)
    if min(_worst(cell, trains, end_dod, temp_c, c, rest).values()) < spec.brownout_mv:
        first_warm = first_below(temp_c)
    worst = min(at_end, key=lambda k: at_end[k])
    fresh = min(_worst(cell, trains, 0.0, temp_c, c, rest).values())
    return Brownout(
        temp_c=temp_c,
        cold_c=cold_c,
        brownout_mv=spec.brownout_mv,
        bulk_uf=c,
        end_dod=end_dod,
        min_mv=at_end,
        margin_mv=at_end[worst] - spec.brownout_mv,
        fresh_margin_mv=fresh - spec.brownout_mv,
        browns_out_at_dod=first_cold if first_cold is None or first_cold <= end_dod else None,
        browns_out_at_dod_warm=first_warm if first_warm is None or first_warm <= end_dod else None,
        worst_session=worst,
        alerts_until_dod=until["scanning"],
        bulk_uf_needed=_max_needed(
            [
                bulk_needed(cell, {name: t}, until[name], cold_c, rest, spec.brownout_mv)
                for name, t in trains.items()
            ]
        ),
        curve=curve,
    )


def bulk_needed(
    cell: Cell,
    trains: dict[str, list[PulseTrain]],
    dod: float,
    temp_c: float,
    rest_ua: float,
    brownout_mv: float,
) -> float | None:
    """The smallest bulk capacitor (uF, two significant figures up) that keeps
    every session above the brownout voltage at this depth of discharge and
    temperature; None if not even _MAX_UF does."""

    def holds(c_uf: float) -> bool:
        return min(_worst(cell, trains, dod, temp_c, c_uf, rest_ua).values()) >= brownout_mv

    if holds(0.0):
        return 0.0
    if not holds(_MAX_UF):
        return None
    lo, hi = 0.0, _MAX_UF
    while hi - lo > max(1.0, hi * 0.005):
        mid = (lo + hi) / 2 if lo > 0 else hi / 64
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return _round_up(hi)


def _max_needed(sizes: list[float | None]) -> float | None:
    """The largest of each session's capacitor; None if one has none that fits."""
    return None if None in sizes else max(s for s in sizes if s is not None)


def _round_up(value: float) -> float:
    """Up to two significant figures."""
    scale = 10 ** max(0, len(str(int(value))) - 2)
    return float(-(-int(value) // scale) * scale)
