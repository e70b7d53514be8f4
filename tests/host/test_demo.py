"""`amr demo`, as a newcomer runs it: the story it tells must be true."""

from __future__ import annotations

import json

from click.testing import CliRunner

from amrkit.boards import load_board
from amrkit.cli import main
from amrkit.demo.store import run_store_demo
from amrkit.demo.story import run_demo


def test_demo_transcript_shows_the_whole_story() -> None:
    lines: list[str] = []
    diag = run_demo(load_board(), out=lines.append)
    text = "\n".join(lines)
    assert "gesture: alarm (presses) after 3 presses" in text
    assert "gesture: alarm (hold)" in text
    assert text.count("verified ALERT") == 2
    assert text.count("acknowledged by the receiver") == 2
    assert "verified heartbeat" in text
    assert "FAULT missing" in text
    assert diag["alerts"] == 2 and diag["presses"] == 4 and diag["faults"] == 0


def test_demo_json_prints_diagnostics_only() -> None:
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["alerts"] == 2


def test_unknown_board_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["demo", "--board", "nope"])
    assert result.exit_code == 2 and "known boards: esp32c3-coin" in result.output


def test_store_demo_takes_three_units_through_the_store() -> None:
    lines: list[str] = []
    story = run_store_demo(load_board(), out=lines.append)
    text = "\n".join(lines)
    # All three units are used, and each ends where the story says.
    assert story["states"] == {"unit-1": "wiped", "unit-2": "checked", "unit-3": "provisioned"}
    assert story["checks"] == {"unit-1": True, "unit-2": True, "unit-3": False}
    for verb in ("amr flash", "amr provision", "amr check", "amr units issue",
                 "amr bundle export", "amr wipe", "amr audit verify"):  # fmt: skip
        assert f"$ {verb}" in text, verb
    assert "test press heard" in text and "battery  FAIL" in text
    assert "unit-3 refused" in text and "check the unit first" in text
    assert story["alerts_heard"] == 1 and "0 alerts pending (acknowledged)" in text
    assert story["audit_problems"] == [] and "hash chain intact" in text
    # Service mode over BLE answers what the wired link does, from the same cell.
    assert story["ble"]["hardware"] == "ESP32-C3" and "paired" in text
    assert {"battery_mv", "loaded_mv", "diagnostics", "unit_id"} <= set(story["ble"])
    # Summaries read as sentences and tables, never as Python reprs.
    assert "{'" not in text and "': " not in text and "[{" not in text
