"""`amr demo`, as a newcomer runs it: the story it tells must be true."""

from __future__ import annotations

import json

from click.testing import CliRunner

from amrkit.boards import load_board
from amrkit.cli import main
from amrkit.demo.fleet import run_fleet_demo
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


def test_fleet_demo_flashes_deploys_alerts_and_reads_back() -> None:
    lines: list[str] = []
    report = run_fleet_demo(load_board(), out=lines.append)
    text = "\n".join(lines)
    assert "esptool: ESP32-C3" in text and "mpremote: app deployed" in text
    assert "receiver: verified ALERT" in text
    assert "stopped retrying: acknowledged" in text
    assert report["keys"] == "present" and report["diagnostics"]["alerts"] == 1
    assert report["ble"]["battery_pct"] == report["battery_pct"]  # the same cell, both links
    assert report["ble"]["hardware"] == "ESP32-C3" and "paired" in text
    # The control point answers the same commands as the wired link.
    assert set(report["ble"]) >= set(report) - {"ble"}
    assert report["ble"]["unit_id"] == report["unit_id"] and "control point" in text
