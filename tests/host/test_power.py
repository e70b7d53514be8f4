"""The power model (amrkit.power) against hand-computed cases, and the
forecast from the twin's per-event accounting against a month the twin
simulates."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.power.brownout import bulk_needed, check, sessions
from amrkit.power.cell import Cell, PulseTrain, pulse_end_mv, session_min_mv
from amrkit.power.events import HOUR_MS, EventCost, event_costs
from amrkit.power.forecast import DAY_MS, Policy, budget, forecast
from amrkit.power.report import PowerReport
from amrkit.power.spec import power_spec, radio_timing
from amrkit.twin.energy import STATES, account
from amrkit.twin.factory import provision
from amrkit.twin.unit import VirtualUnit

BOARD = load_board("esp32c3-coin")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cache of the twin's measurement for this module's tests, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def _no_events() -> dict[str, EventCost]:
    nothing = dict.fromkeys(STATES, 0.0)
    names = ("heartbeat", "alert", "cover", "store_check", "service_session", "alert_unacked")
    return {name: EventCost(name, dict(nothing), "test") for name in names}


# --- the cell ---------------------------------------------------------------


def test_constant_load_lasts_capacity_over_current() -> None:
    """Only deep sleep, currents as given: days = capacity / (current + self-discharge)."""
    base = power_spec(BOARD)
    spec = replace(base, currents_ua=dict.fromkeys(base.currents_ua, 10.0), brownout_mv=1000.0)
    fc = forecast(spec, _no_events(), Policy(), constant_power=False)
    cell = Cell(spec.nominal_mah)
    assert cell.capacity_mah(10.0, 20.0) == spec.nominal_mah  # light load, room temperature
    expected = spec.nominal_mah * 1000 / ((10.0 + cell.self_discharge_ua()) * 24)
    assert fc.limited_by == "capacity"
    assert fc.days == pytest.approx(expected, rel=1e-9)


def test_pulse_without_capacitor_is_ohms_law() -> None:
    assert pulse_end_mv(3000, 15, 0, 100_000, 3) == pytest.approx(3000 - 15 * 0.100 * 1000)
    assert pulse_end_mv(3000, 15, 0, 100_000, 3, base_ua=20_000) == pytest.approx(1500)


def test_capacitor_shrinks_the_sag_as_the_rc_formula_says() -> None:
    # tau = 15 ohm * 1000 uF = 15 ms; 3 ms of 100 mA: the cell gives 1 - e^-0.2 of it.
    sag = 15 * 0.100 * (1 - math.exp(-3 / 15)) * 1000
    assert pulse_end_mv(3000, 15, 1000, 100_000, 3) == pytest.approx(3000 - sag)
    assert 3000 - pulse_end_mv(3000, 15, 1000, 100_000, 3) < 0.2 * 1500
    # bigger capacitor, smaller sag; none at all for a vanishing pulse
    assert pulse_end_mv(3000, 15, 10_000, 100_000, 3) > pulse_end_mv(3000, 15, 1000, 100_000, 3)
    assert pulse_end_mv(3000, 15, 1000, 100_000, 0) == pytest.approx(3000)


def test_a_pulse_train_settles_to_its_periodic_worst() -> None:
    # C = 0: every pulse is Ohm's law; a long steady load is Voc - I*R.
    train = PulseTrain(1000, 10_000, 100_000, 3, 100)
    assert session_min_mv(3000, 15, 0, [train]) == pytest.approx(3000 - 1500)
    assert session_min_mv(3000, 15, 470, [PulseTrain(1000, 40_000)]) == pytest.approx(2400)
    # with a capacitor the train's worst lies between the base's and the pulse's sag
    worst = session_min_mv(3000, 15, 470, [train])
    assert 3000 - 1500 < worst < 3000 - 150


def test_resistance_rises_with_discharge_and_cold() -> None:
    r = Cell.resistance_ohm
    assert 10 <= r(0.0) <= 20  # fresh
    assert r(0.5) < r(0.7) < r(0.8) < r(0.9) < r(1.0)
    assert r(0.95) > 3 * r(0.8) > 3 * 1.5 * r(0.5)  # steeply past ~80 %
    assert r(0.5, -10) > r(0.5, 0) > r(0.5, 20)
    assert Cell.ocv_mv(0.0) > Cell.ocv_mv(0.5) > Cell.ocv_mv(0.9) > Cell.ocv_mv(1.0)


def test_capacity_derates_with_cold_and_load() -> None:
    cell = Cell(225)
    assert cell.capacity_mah(10, 20) == 225
    assert cell.capacity_mah(10, -20) < cell.capacity_mah(10, 0) < cell.capacity_mah(10, 20)
    assert cell.capacity_mah(3000, 20) < cell.capacity_mah(1000, 20) < cell.capacity_mah(200, 20)


def test_bulk_capacitor_needed_is_the_smallest_that_holds() -> None:
    spec = power_spec(BOARD)
    trains = sessions(spec, radio_timing(), None)
    cell = Cell(spec.nominal_mah)
    need = bulk_needed(cell, trains, 0.0, 20.0, 9.0, spec.brownout_mv)
    assert need is not None and need > 0
    voc, r = cell.ocv_mv(0.0), cell.resistance_ohm(0.0, 20.0)
    for c, holds in ((need, True), (need * 0.9, False)):
        worst = min(session_min_mv(voc, r, c, t, 9.0) for t in trains.values())
        assert (worst >= spec.brownout_mv) is holds


# --- the forecast against the twin ------------------------------------------


def test_forecast_agrees_with_a_month_simulated_by_the_twin(tmp_path: Path) -> None:
    """The forecast counts a heartbeat as the twin measured one and deep sleep
    in between; a unit left to beat for 30 virtual days must have drawn the
    same at the rate it beat. Each interval is drawn around 6 h (less or
    more a fifth: firmware/amr/alert.py heartbeat_gap_ms, mean 6 h), so the
    month's beats vary within the bounds the draw allows, and the forecast
    is taken at the month's own rate. Tolerance 1 %: the month also holds the
    power-on boot and each beat's own ~1.1 s, under 0.3 % of the month's
    charge, which deep sleep (~80 % of it) dominates."""
    spec = power_spec(BOARD)
    unit = VirtualUnit(tmp_path / "unit", BOARD)
    config = dict(firmware_module("config").DEFAULTS, heartbeat_s=6 * 3600)
    provision(unit, config)
    unit.power_on()
    end = 30 * DAY_MS
    unit.run_until(end)
    month = account(BOARD, unit.boots, end)
    beats = len(unit.boots) - 1
    beat_ms = config["heartbeat_s"] * 1000
    spread = beat_ms // firmware_module("alert")._HEARTBEAT_SPREAD
    # The first beat comes one interval after the power-on, the rest at drawn gaps.
    assert (
        1 + (end - beat_ms) // (beat_ms + spread)
        <= beats
        <= 1 + (end - beat_ms) // (beat_ms - spread)
    )
    policy = Policy(heartbeat_h=30 * 24 / beats, alerts_per_month=0, checks_per_month=0)
    per_day = budget(spec, event_costs(BOARD), policy, spec.currents_ua)
    twin = month.uah / 30
    model = per_day.total - per_day.by_event["self_discharge"]
    assert model == pytest.approx(twin, rel=0.01)
    # the same split: the heartbeats' advertising, and deep sleep
    heartbeat = event_costs(BOARD)["heartbeat"]
    assert month.ms["advertising"] == pytest.approx(beats * heartbeat.ms["advertising"], rel=0.01)
    assert month.ms["deep_sleep"] / 30 * spec.currents_ua["deep_sleep"] / HOUR_MS == pytest.approx(
        per_day.by_event["deep_sleep"], rel=0.01
    )


def test_cover_traffic_costs_what_the_twin_measured() -> None:
    spec = power_spec(BOARD)
    events = event_costs(BOARD)
    off = budget(spec, events, Policy(), spec.currents_ua)
    on = budget(spec, events, Policy(cover=True, cover_per_day=4), spec.currents_ua)
    cover = events["cover"]
    assert cover.source == "twin"
    # a burst (burst_ms) and the firmware's mean of 2 retries (1 s each), plus the boots
    timing = radio_timing()
    expected = timing.burst_ms + timing.cover_mean_retries * timing.retry_advertise_ms
    # Sequences start and end at random (the twin's RNG: a day, about 48
    # sequences), and now and then a burst's wake also carries a retry: the
    # measured cost moves by a few percent between runs.
    assert cover.ms["advertising"] == pytest.approx(expected, rel=0.1)
    assert on.total - off.total == pytest.approx(4 * cover.uah(spec.currents_ua), rel=0.01)


# --- the thresholds the firmware carries -------------------------------------


def test_firmware_defaults_satisfy_the_computed_low_battery_policy() -> None:
    """The reference board's default policy: warning >= 30 days before the end,
    floor keeping 7 days plus a full alert sequence; the firmware's defaults
    must warn at or before, and stop retries at or before, those voltages."""
    report = PowerReport(BOARD, Policy())
    th = report.thresholds
    assert th.in_range
    assert th.firmware_satisfies, (th.low_battery_mv, th.battery_floor_mv)
    assert report.forecast.remaining_days(report.forecast.dod_at_remaining(30)) == pytest.approx(
        30, abs=0.5
    )
    assert th.reserve_days >= 7


def test_alerts_are_judged_up_to_the_firmware_floor_heartbeats_to_the_end() -> None:
    """Below the battery floor the firmware sends no alert (alert.py), so an
    alert's session is checked where the gauge crosses the floor; a heartbeat
    goes out to the end of life."""
    report = PowerReport(BOARD, Policy())
    fc, br = report.forecast, report.brownout
    floor = firmware_module("config").DEFAULTS["battery_floor_mv"]
    assert br.alerts_until_dod == pytest.approx(fc.dod_at_gauge(floor))
    assert 0 < br.alerts_until_dod < fc.end_dod
    assert fc.gauge_mv_at(br.alerts_until_dod) == pytest.approx(floor, abs=1)
    # Judged to the end of life instead, the alert's session sags lower.
    to_the_end = check(power_spec(BOARD), radio_timing(), fc.end_dod, 20.0)
    assert to_the_end.alerts_until_dod == fc.end_dod
    assert to_the_end.min_mv["scanning"] < br.min_mv["scanning"]
    assert to_the_end.min_mv["advertising"] == br.min_mv["advertising"]
