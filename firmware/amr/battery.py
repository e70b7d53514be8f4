# Battery gauge for a CR2032 coin cell: ADC reading -> cell millivolts ->
# percent remaining, and a low-battery flag that does not flap.
#
# Pure logic: the driver reads machine.ADC.read_uv() (factory-calibrated on
# ESP32) with the board's divider switched on and passes the number here.
#
# percent() expects the voltage UNDER LOAD, read during or right after a radio
# burst. A lithium coin cell reads ~3.0-3.2 V at rest until nearly empty, so
# the resting voltage says almost nothing about charge; what drops with use
# is the voltage it can hold while delivering a pulse, because its internal
# resistance rises from ~10-20 ohm fresh to hundreds of ohm near the end.
from amr.compat import const

# Loaded cell voltage (mV, falling) and capacity left (%) at that voltage.
# Piecewise-linear fit to the shape of manufacturers' CR2032 pulse-discharge
# curves (e.g. the Energizer and Panasonic datasheets, and Nordic's/TI's
# application notes on high pulse drain from coin cells) for pulses of
# ~10-15 mA, i.e. a BLE burst through the boost converter. Most of the
# capacity lies on a gentle slope down to ~2.6 V; below that comes the knee,
# where the voltage collapses for little remaining charge.
_MV = (2950, 2900, 2850, 2800, 2750, 2700, 2600, 2500, 2400, 2200, 2000)
_PCT = (100, 92, 83, 73, 62, 50, 32, 18, 9, 3, 0)
_POINTS = const(11)


def millivolts(adc_uv: int, divider_num: int, divider_den: int) -> int:
    """Cell mV from the ADC pin's microvolts through a divider of ratio num/den.

    num/den is (r_top + r_bottom) / r_bottom, reduced (amr.board BATT_DIV_*),
    which keeps the products small ints on the chip. Rounded to nearest mV.
    """
    if adc_uv <= 0:
        return 0
    den = divider_den * 1000
    return (adc_uv * divider_num * 2 + den) // (den * 2)


def percent(mv: int) -> int:
    """0..100 % left for a loaded cell voltage in mV; clamped at both ends."""
    if mv >= _MV[0]:
        return 100
    if mv <= _MV[_POINTS - 1]:
        return 0
    i = 1
    while mv < _MV[i]:
        i += 1
    # _MV[i] <= mv < _MV[i - 1]: interpolate, rounding to nearest.
    lo_mv = _MV[i]
    lo_pct = _PCT[i]
    span = _MV[i - 1] - lo_mv
    return lo_pct + ((mv - lo_mv) * (_PCT[i - 1] - lo_pct) * 2 + span) // (span * 2)


def is_low(mv: int, low_mv: int, was_low: bool, hysteresis_mv: int = 50) -> bool:
    """Low-battery flag: set below low_mv, cleared only at low_mv + hysteresis_mv.

    A coin cell recovers some voltage after a rest and loaded readings vary
    with the burst, so a single threshold would flap between wakes.
    """
    if was_low:
        return mv < low_mv + hysteresis_mv
    return mv < low_mv
