"""Press storms on a whole twin unit (amrkit.twin.storms): 50 presses in
about 10 s, holds mixed in. Every alarm gesture the rules give raises one
alert that reaches the receiver, and nothing else does. More storms in
`make bench`."""

from __future__ import annotations

from pathlib import Path

import pytest

from amrkit.twin.storms import PRESSES, run_storm


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_alarm_in_a_storm_is_one_alert_and_nothing_else_is(tmp_path: Path, seed: int) -> None:
    report = run_storm(tmp_path / "unit", seed)
    assert len(report.presses) == PRESSES
    assert report.expected > 0
    assert report.alarm_gestures == report.expected, report.figures()
    assert len(report.reserved) == report.expected  # each a new alert with its own id
    assert len(set(report.reserved)) == len(report.reserved)
    # Each reached the receiver, even those pushed out of the pending list
    # by newer ones (their bursts still go out); no other alert did.
    assert report.heard == set(report.reserved), report.figures()
