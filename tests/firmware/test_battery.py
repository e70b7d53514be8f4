# amr.battery under the MicroPython unix port.
from amr import battery, board

# (mV, %) points; MicroPython's zip() has no strict= for ruff's liking.
TABLE = tuple((battery._MV[i], battery._PCT[i]) for i in range(len(battery._MV)))


def test_table_shape():
    assert TABLE[0] == (2950, 100)
    assert TABLE[-1] == (2000, 0)
    assert len(battery._PCT) == len(battery._MV)
    for i in range(1, len(TABLE)):
        (mv_hi, pct_hi), (mv_lo, pct_lo) = TABLE[i - 1], TABLE[i]
        assert mv_hi > mv_lo and pct_hi > pct_lo, i


def test_percent_clamps_above_max():
    for mv in (2950, 2951, 3000, 3300, 3600, 10_000):
        assert battery.percent(mv) == 100, mv


def test_percent_clamps_below_min():
    for mv in (2000, 1999, 1500, 0, -5):
        assert battery.percent(mv) == 0, mv


def test_percent_exact_at_each_table_point():
    for mv, pct in TABLE:
        assert battery.percent(mv) == pct, (mv, battery.percent(mv), pct)


def test_percent_interpolates_between_points():
    # Halfway between 2700 mV (50 %) and 2600 mV (32 %).
    assert battery.percent(2650) == 41
    # Rounded to nearest: 2901 mV is 92.16 %, 2949 mV is 99.84 %.
    assert battery.percent(2901) == 92
    assert battery.percent(2949) == 100


def test_percent_monotonic_in_1mv_steps():
    last = battery.percent(1900)
    assert last == 0
    for mv in range(1901, 3101):
        p = battery.percent(mv)
        assert 0 <= p <= 100, (mv, p)
        assert p >= last, (mv, p, last)
        last = p
    assert last == 100


def test_knee_near_the_end():
    # The last 10 % of capacity spans far more voltage than the first 10 %.
    top = 2950 - min(mv for mv in range(2000, 2951) if battery.percent(mv) >= 90)
    bottom = max(mv for mv in range(2000, 2951) if battery.percent(mv) <= 10) - 2000
    assert bottom > 3 * top, (top, bottom)


def test_millivolts_with_board_divider():
    num, den = board.BATT_DIV_NUM, board.BATT_DIV_DEN
    # The reference board halves the cell voltage (470k/470k).
    assert (num, den) == (2, 1)
    assert battery.millivolts(1_500_000, num, den) == 3000
    assert battery.millivolts(1_350_250, num, den) == 2701  # 2700.5 rounds up
    assert battery.millivolts(1_350_249, num, den) == 2700
    assert battery.millivolts(1_000_000, num, den) == 2000
    assert battery.millivolts(0, num, den) == 0


def test_millivolts_unreduced_and_odd_ratios():
    # Same divider, unreduced: 940k / 470k.
    assert battery.millivolts(1_500_000, 940_000, 470_000) == 3000
    # 1M over 470k: ratio 147/47.
    assert battery.millivolts(959_184, 147, 47) == 3000  # 2999.99 mV
    assert battery.millivolts(959_000, 147, 47) == 2999  # 2999.41 mV
    # The ADC's largest reading (~2.5 V at 11 dB) stays a small int on the chip.
    assert battery.millivolts(2_500_000, 147, 47) == 7819


def test_millivolts_negative_reading_is_zero():
    assert battery.millivolts(-100, 2, 1) == 0


def test_is_low_sets_below_threshold():
    assert battery.is_low(2400, 2400, False) is False
    assert battery.is_low(2399, 2400, False) is True
    assert battery.is_low(2000, 2400, False) is True


def test_is_low_hysteresis_holds_until_threshold_plus_margin():
    assert battery.is_low(2400, 2400, True) is True
    assert battery.is_low(2449, 2400, True) is True
    assert battery.is_low(2450, 2400, True) is False
    assert battery.is_low(2440, 2400, True, hysteresis_mv=30) is False


def test_is_low_does_not_flap_on_noisy_readings():
    # Loaded readings wobbling +-30 mV around the threshold: one transition.
    readings = (2420, 2395, 2415, 2405, 2390, 2425, 2398, 2430, 2410)
    low = False
    flips = 0
    for mv in readings:
        now = battery.is_low(mv, 2400, low)
        if now != low:
            flips += 1
        low = now
    assert flips == 1 and low is True
    # A fresh cell clears it.
    assert battery.is_low(2950, 2400, low) is False
