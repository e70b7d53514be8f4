"""Many twin units on one live radio, several pressed at once, heard by
`amr listen` as a gateway forwarding to a webhook (amrkit.twin.air_load).
The full load, 200 units with 20 pressed, is in `make bench`."""

from __future__ import annotations

from pathlib import Path

from amrkit.twin.air_load import run_load


def test_every_alert_of_units_pressed_at_once_is_verified_and_forwarded(tmp_path: Path) -> None:
    report = run_load(tmp_path, units=24, pressed=6, seed=3)
    assert report.exit_code == 0, report.stderr
    assert len(report.alerts_expected) == 6  # one alert per pressed unit, from its own frames
    assert report.alerts_printed >= report.alerts_expected, report.stderr
    assert report.alerts_forwarded >= report.alerts_expected
    assert report.other_units_alerting == 0
    # Every routine unit was heard too: its heartbeat event is one line each.
    assert report.events >= report.units
