"""`amr power` as a user runs it: a subprocess, its table, JSON and plot, and
bad input ending in a message and a documented exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amrkit.boards import load_board

AMR = str(Path(sys.executable).parent / "amr")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A cache of the twin's measurement shared by this module's runs."""
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


def amr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AMR, "power", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_table_shows_forecast_charge_brownout_and_thresholds(env: dict[str, str]) -> None:
    result = amr(env)
    assert result.returncode == 0, result.stderr
    for text in ("forecast", "years", "brownout", "thresholds", "heartbeat", "deep_sleep",
                 "uAh/day", "twin", "fallback"):  # fmt: skip
        assert text in result.stdout, text


def test_a_light_sleep_standby_costs_the_light_sleep_current(env: dict[str, str]) -> None:
    deep = json.loads(amr(env, "--json").stdout)
    light = json.loads(amr(env, "--json", "--standby", "light_sleep").stdout)
    by_event = light["charge_per_day_uah"]["by_event"]
    assert "deep_sleep" not in by_event and by_event["light_sleep"] > 0
    # Each awake event costs the same; only the standby changes.
    assert by_event["heartbeat"] == deep["charge_per_day_uah"]["by_event"]["heartbeat"]
    currents = load_board().currents_ua
    ratio = currents["light_sleep"] / currents["deep_sleep"]
    assert by_event["light_sleep"] == pytest.approx(
        deep["charge_per_day_uah"]["by_event"]["deep_sleep"] * ratio, rel=0.01
    )
    assert light["life"]["days"] < deep["life"]["days"] / 10


def test_the_stock_deployment_boots_longer_and_lives_shorter(env: dict[str, str]) -> None:
    frozen = json.loads(amr(env, "--json").stdout)
    stock = json.loads(amr(env, "--json", "--deployment", "stock").stdout)
    boot = {d: r["events"]["heartbeat"]["ms"]["boot"] for d, r in (("f", frozen), ("s", stock))}
    board = load_board()
    assert boot["s"] - boot["f"] == board.wake_to_app["stock"] - board.wake_to_app["frozen"]
    assert stock["life"]["days"] < frozen["life"]["days"]


def test_json_has_the_fields(env: dict[str, str]) -> None:
    result = amr(env, "--json", "--cover", "--cover-per-day", "2", "--temp-c", "15")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["board"] == "esp32c3-coin"
    assert data["policy"]["cover"] is True and data["policy"]["cover_per_day"] == 2
    assert data["life"]["days"] > 0 and data["life"]["years"] == pytest.approx(
        data["life"]["days"] / 365.25, abs=0.01
    )
    by_event = data["charge_per_day_uah"]["by_event"]
    assert by_event["cover"] > 0 and by_event["deep_sleep"] > 0
    assert sum(by_event.values()) == pytest.approx(data["charge_per_day_uah"]["total"], abs=0.5)
    assert data["events"]["heartbeat"]["source"] == "twin"
    assert data["events"]["store_check"]["source"].startswith("fallback")
    assert {"margin_mv", "browns_out_at_dod", "bulk_uf_needed", "ok"} <= set(data["brownout"])
    th = data["thresholds"]
    assert th["low_battery_mv"] > th["battery_floor_mv"]


def test_plot_writes_a_png(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "power.png"
    result = amr(env, "--plot", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # a drawn figure, not an empty canvas
    assert json.loads(result.stdout)["plot"] == str(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--alerts-per-month", "-1"), "--alerts-per-month"),
        (("--checks-per-month", "-0.5"), "--checks-per-month"),
        (("--board", "no-such-board"), "no such board profile"),
        (("--plot", "/no/such/folder/power.png"), "no folder"),
        (("--tx-dbm", "42"), "no advertising current at 42 dBm"),
        (("--heartbeat-h", "0"), "--heartbeat-h"),
    ],
)
def test_bad_input_is_a_usage_error_with_a_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = amr(env, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_path_that_is_a_folder(env: dict[str, str], tmp_path: Path) -> None:
    result = amr(env, "--plot", str(tmp_path))
    assert result.returncode == 2
    assert "--plot" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_plot_path(env: dict[str, str], tmp_path: Path) -> None:
    # A folder where the file should go: no user can write it as a file.
    folder = tmp_path / "power.png"
    folder.mkdir()
    result = amr(env, "--plot", str(folder))
    assert result.returncode == 2
    assert "is a directory" in result.stderr and "Traceback" not in result.stderr
