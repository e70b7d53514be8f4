"""Power cuts at random moments of a twin unit's life (amrkit.twin.power_cuts):
a few hundred here, ten thousand in `make bench` (tools/bench_faults.py)."""

from __future__ import annotations

from pathlib import Path

from amrkit.twin.power_cuts import run_campaign

CUTS = 300


def test_no_cut_reuses_a_counter_loses_an_alert_or_leaves_flash_unreadable(
    tmp_path: Path,
) -> None:
    report = run_campaign(tmp_path / "unit", CUTS, seed=11)
    assert report.cuts >= CUTS
    # Every way of losing power was tried: at a commit before and after the
    # write, awake at a random instant, asleep, and again during the power-on.
    assert set(report.by_kind) == {
        "commit-before",
        "commit-after",
        "awake",
        "asleep",
        "during-power-on",
    }, report.by_kind
    assert report.faults == []
    assert report.reused_counters == 0
    assert report.persisted, "no alert was persisted: the campaign pressed nothing"
    assert report.lost == set(), f"alerts persisted but never heard: {sorted(report.lost)}"
    # Nothing but a press makes an alert.
    assert len(report.heard) <= report.presses
