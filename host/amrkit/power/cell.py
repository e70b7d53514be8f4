"""A CR2032 lithium/manganese-dioxide coin cell, first order.

Sources (figures marked ESTIMATE are read off the shape of the published
curves, not from a table, and are to be replaced by measurements of the
cells the units ship with):

[E]  Energizer CR2032 product datasheet: rated capacity 235 mAh to 2.0 V on
     a 15 kohm load (~0.19 mA) at 21 C; "capacity vs. continuous drain" and
     "pulse characteristics" (100 ohm, 2 s) figures.
[P]  Panasonic CR2032 datasheet / Sanyo coin lithium catalogue: nominal
     225 mAh at the standard 0.2 mA drain; temperature characteristics on
     15 kohm (190 uA) at -20, 0, 23, 70 C; operating range -20..+70 C.
[N]  K. Furset (Nordic Semiconductor), P. Hoffman (Energizer), "High pulse
     drain impact on CR2032 coin cell battery capacity": the internal
     resistance is the cell's main state variable; it rises with depth of
     discharge and with cold, and the usable capacity under pulses ends where
     the loaded voltage reaches the application's cut-off.
[T]  Texas Instruments SWRA349, "Coin cells and peak current draw": figure 6,
     internal resistance against capacity drawn (flat at ~10-20 ohm, rising
     steeply over the last ~20 %); 30 mA instead of 15 mA peaks cost ~9 % of
     the effective capacity on average, and a capacitor across the cell is
     the most effective way to use more of it (>40 % with poor cells).
[D]  Duracell CR2032 datasheet as summarised in "Driving circuits from a
     CR2032" (interactive-matter.eu, 2009): ESR ~18-20 ohm up to ~150 of
     240 mAh, ~30 ohm at ~170 mAh; voltage falls sharply below ~2.8 V.
[R]  Renata's engineering notes on pulse loads (as cited by TI's BLE coin
     cell posts, e2e.ti.com 2010): pulses of tens of mA for ~100 ms are
     possible from a CR2032; the limit is the voltage drop, not damage.
[S]  Self-discharge ~1 % of capacity a year at room temperature (Energizer
     and Panasonic lithium coin handbooks).

The pulse model: the cell is a Thevenin source (open-circuit voltage and
internal resistance R) with the bulk capacitor C across its terminals. A
load step from I0 to I makes the cell's own current relax from I0 towards I
with tau = R*C (the capacitor supplies the difference), so the terminal
voltage at the end of a pulse of t ms is

    V = Voc - R * (I0 + (I - I0) * (1 - exp(-t / (R*C))))

which is Voc - I*R with C = 0. The capacitor's own ESR and leakage are
ignored (first order).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

# Depth of discharge (fraction of the capacity drawn) -> open-circuit (rest)
# voltage, mV. ESTIMATE from the 15 kohm discharge curves of [E] and [P]
# (the drop there is ~3 mV of I*R, so they are the rest voltage): ~3.2 V
# fresh, a long plateau at ~3.0-2.9 V, the knee over the last ~10 %, 2.0 V
# at the rated end (at which the 15 kohm voltage reaches 2.0 V).
_OCV_DOD = (0.0, 0.02, 0.10, 0.30, 0.50, 0.70, 0.80, 0.90, 0.95, 0.98, 1.0)
_OCV_MV = (3250, 3150, 3080, 3030, 3000, 2960, 2920, 2840, 2700, 2450, 2100)

# Depth of discharge -> internal resistance at 20 C, ohm. ESTIMATE after [T]
# figure 6 and [D]: 10-20 ohm fresh (15 taken), flat to ~60 %, ~22 at 70 %,
# then steeply up: ~35 at 80 %, ~80 at 90 %, hundreds at the end.
_R_DOD = (0.0, 0.10, 0.50, 0.60, 0.70, 0.80, 0.85, 0.90, 0.95, 1.0)
_R_OHM = (15.0, 14.0, 15.0, 17.0, 22.0, 35.0, 50.0, 80.0, 150.0, 300.0)

# Temperature -> factor on the internal resistance. ESTIMATE from the
# spread of [P]'s temperature curves at 190 uA and [N]: the electrolyte's
# resistance roughly doubles from room temperature to -10 C, triples at -20.
_R_TEMP_C = (-20.0, -10.0, 0.0, 10.0, 20.0, 40.0, 60.0)
_R_TEMP_X = (3.0, 2.2, 1.6, 1.25, 1.0, 0.85, 0.8)

# Average load current, uA -> fraction of the nominal capacity. ESTIMATE
# from [E]'s capacity vs. continuous drain figure, normalised to the 0.2 mA
# standard drain of [P]: no loss at and below the standard drain, ~11 % at
# 1 mA, a third at 3 mA (the datasheets' maximum continuous drain).
_LOAD_UA = (0.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0)
_LOAD_X = (1.0, 1.0, 0.96, 0.89, 0.76, 0.65)

# Temperature -> fraction of the nominal capacity at a light load. ESTIMATE
# from [P]'s temperature characteristics (15 kohm): little loss down to
# 0 C, ~20 % at -20 C; the cell is specified down to -20 C only.
_CAP_TEMP_C = (-20.0, -10.0, 0.0, 10.0, 20.0, 60.0)
_CAP_TEMP_X = (0.80, 0.88, 0.94, 0.98, 1.0, 1.0)

SELF_DISCHARGE_PER_YEAR = 0.01  # [S]
MIN_TEMP_C = -20.0  # [P]: the specified operating range
MAX_TEMP_C = 70.0


def interpolate(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Piecewise-linear y(x) through the points, held flat beyond both ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Cell:
    """A CR2032 of `nominal_mah` (the board profile's figure)."""

    nominal_mah: float = 225.0

    def capacity_mah(self, average_ua: float, temp_c: float = 20.0) -> float:
        """Capacity to the rated end at this average load and temperature."""
        load = interpolate(average_ua, _LOAD_UA, _LOAD_X)
        cold = interpolate(temp_c, _CAP_TEMP_C, _CAP_TEMP_X)
        return self.nominal_mah * load * cold

    def self_discharge_ua(self) -> float:
        """Self-discharge as an equivalent steady current."""
        return self.nominal_mah * 1000 * SELF_DISCHARGE_PER_YEAR / (365.25 * 24)

    @staticmethod
    def ocv_mv(dod: float) -> float:
        """Open-circuit voltage at a depth of discharge (0 fresh .. 1 empty)."""
        return interpolate(dod, _OCV_DOD, _OCV_MV)

    @staticmethod
    def resistance_ohm(dod: float, temp_c: float = 20.0) -> float:
        """Internal resistance at a depth of discharge and temperature."""
        return interpolate(dod, _R_DOD, _R_OHM) * interpolate(temp_c, _R_TEMP_C, _R_TEMP_X)

    def loaded_mv(self, dod: float, temp_c: float, load_ua: float) -> float:
        """Terminal voltage under a steady load (the capacitor has settled)."""
        return self.ocv_mv(dod) - load_ua / 1000 * self.resistance_ohm(dod, temp_c)

    def constant_power_mv(self, dod: float, temp_c: float, ua_at: float, ref_mv: float) -> float:
        """Terminal voltage feeding a constant-power load (a boost converter)
        that draws ua_at at ref_mv: V = Voc - R * I_ref * V_ref / V, the
        larger root; 0.0 if the cell cannot deliver that power at all."""
        voc = self.ocv_mv(dod) / 1000
        drop = self.resistance_ohm(dod, temp_c) * ua_at / 1e6 * ref_mv / 1000
        disc = voc * voc - 4 * drop
        if disc < 0:
            return 0.0
        return 1000 * (voc + math.sqrt(disc)) / 2


def pulse_end_mv(
    voc_mv: float, r_ohm: float, c_uf: float, pulse_ua: float, t_ms: float, base_ua: float = 0.0
) -> float:
    """Terminal voltage at the end of a pulse of pulse_ua lasting t_ms, from
    a steady base_ua before it, with c_uf across the cell (see the module
    doc). The lowest voltage of the pulse: it falls throughout."""
    return max(0.0, voc_mv - r_ohm * cell_current_ua(r_ohm, c_uf, base_ua, pulse_ua, t_ms) / 1000)


def cell_current_ua(
    r_ohm: float, c_uf: float, from_ua: float, load_ua: float, t_ms: float
) -> float:
    """The cell's own current t_ms after the load steps to load_ua, having
    been from_ua: it relaxes with tau = R*C while the capacitor makes up the
    rest."""
    tau_ms = r_ohm * c_uf / 1000
    if tau_ms <= 0:
        return load_ua
    return load_ua + (from_ua - load_ua) * math.exp(-t_ms / tau_ms)


@dataclass(frozen=True)
class PulseTrain:
    """A stretch of `duration_ms` at base_ua, with a pulse of pulse_ua for
    on_ms at the start of every period_ms (an advertising event, a scan
    window); on_ms = 0 for a steady load."""

    duration_ms: float
    base_ua: float
    pulse_ua: float = 0.0
    on_ms: float = 0.0
    period_ms: float = 1.0


def session_min_mv(
    voc_mv: float, r_ohm: float, c_uf: float, trains: list[PulseTrain], rest_ua: float = 0.0
) -> float:
    """The lowest terminal voltage over a session of pulse trains one after
    another, the capacitor charged at rest (rest_ua) before it. Exact for
    the first-order model: the cell current is stepped through every phase."""
    current = rest_ua
    worst = current
    for train in trains:
        if train.on_ms <= 0 or train.period_ms <= 0:
            current = cell_current_ua(r_ohm, c_uf, current, train.base_ua, train.duration_ms)
            worst = max(worst, current)
            continue
        elapsed = 0.0
        while elapsed < train.duration_ms:
            phases = ((train.on_ms, train.pulse_ua), (train.period_ms - train.on_ms, train.base_ua))
            for length, load in phases:
                step = min(length, train.duration_ms - elapsed)
                if step <= 0:
                    continue
                current = cell_current_ua(r_ohm, c_uf, current, load, step)
                worst = max(worst, current)
                elapsed += step
    # A linear source would go below zero; a real terminal stops at 0 V.
    return max(0.0, voc_mv - r_ohm * worst / 1000)
