"""tools/bench.py runs end to end (reduced counts) and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench.py"), "--board", "esp32c3-coin"]
        + ["--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())

    press = result["press"]
    assert press["presses"] > 0
    assert press["recogniser_us_per_press"] > 0
    assert press["baseline_us_per_press"] > 0
    assert press["recogniser_to_baseline_ratio"] > 0
    assert press["recogniser_alloc_bytes_per_press"] >= 0
    assert press["baseline_alloc_bytes_per_press"] >= 0
    assert result["bundle"]["files"] > 0
    assert result["bundle"]["bytes"] > 0
    assert result["chatter"]["traces"] == 50
    assert result["chatter"]["alarms"] == 0
    assert result["chatter"]["alarms_per_1000"] == 0
    recognition = result["recognition_pct"]
    assert recognition["traces"] == 50
    boards = recognition["boards"]
    assert "esp32c3-coin" in boards
    for deployments in boards.values():
        assert set(deployments) == {"stock", "frozen"}
        assert sum(r["default"] for r in deployments.values()) == 1
        for r in [*deployments.values(), recognition["awake"]]:
            for key in ("triple_tap", "hold_1600_4000ms", "fast_triple_tap"):
                assert 0 <= r[key] <= 100
        # Edges during a longer boot are lost, never gained.
        stock, frozen = deployments["stock"], deployments["frozen"]
        assert stock["wake_to_app_ms"] >= frozen["wake_to_app_ms"]
        assert stock["fast_triple_tap"] <= frozen["fast_triple_tap"]
        assert frozen["fast_triple_tap"] <= recognition["awake"]["fast_triple_tap"]
        assert stock["chatter_alarms"] == frozen["chatter_alarms"] == 0
    assert "fast triple tap" in proc.stdout
    power = result["power"]
    assert set(power["boards"]) == {"esp32c3-coin", "esp32c6-coin", "esp32h2-coin"}
    for policies in power["boards"].values():
        default = policies["default"]
        assert default["years"] > 0 and default["to_goal_ratio"] == round(default["years"] / 2, 2)
        # More traffic never lengthens the life.
        assert policies["cover 4/day"]["years"] < policies["cover 1/day"]["years"]
        assert policies["cover 1/day"]["years"] < default["years"]
        assert policies["light-sleep standby"]["years"] < default["years"] / 10
    margins = [r["brownout_margin_mv"] for p in power["boards"].values() for r in p.values()]
    assert power["min_brownout_margin_mv"] == min(margins)
    assert "battery life on a CR2032" in proc.stdout
    air = result["air"]
    assert air["presses"] == 3 and air["baseline"] in air["profiles"]
    for name, profile in air["profiles"].items():
        assert profile["presses"] == 3, name
        assert profile["never_heard"] == 0, name  # retries go on until acknowledged
        p = profile["press_to_verified_ms"]
        assert 0 < p["p50"] <= p["p99"], name
        assert profile["advertising_ms_per_alert_mean"] > 0
    assert {"ideal", "gateway", "android_background"} <= set(air["profiles"])
    woken = {w["deployment"]: w for w in result["twin_woken"]}
    assert set(woken) == {"stock", "frozen"}
    assert all(w["presses"] == 5 and 0 <= w["recognised_pct"] <= 100 for w in woken.values())

    # Figures only, no thresholds: the rates depend on the machine.
    receiver = result["receiver"]
    assert receiver["units"] == 1000
    assert receiver["frames"] == 2000
    for key in (
        "receiver_memory_frames_per_s",
        "receiver_file_frames_per_s",
        "bthome_frames_per_s",
        "receiver_memory_to_bthome_ratio",
        "receiver_file_to_bthome_ratio",
    ):
        assert receiver[key] > 0, key
    frame = result["frame"]
    assert frame["calls"] > 0
    assert frame["seal_us_per_frame"] > 0
    assert frame["seal_alloc_bytes_per_frame"] > 0
    assert frame["baseline_us_per_frame"] > 0
    assert frame["baseline_alloc_bytes_per_frame"] >= 0
    assert frame["seal_to_baseline_ratio"] > 0
    assert frame["matches_host_encoder"] is True

    # The store part: units from blank to checked on twin units, at 1 port and
    # in parallel (2 ports in --quick), and the deploy against mpremote cp.
    store = result["store"]
    one, many = store["one_port"], store["many_ports"]
    assert (one["units"], many["units"]) == (1, 2)
    for rate in (one, many):
        assert rate["units_per_hour"] > 0 and rate["wall_s"] > 0
        assert set(rate["step_s"]) == set(rate["settle_s"]) == {"flash", "provision", "check"}
        assert all(rate["step_s"][s] >= rate["settle_s"][s] >= 0 for s in rate["step_s"])
        assert 0 <= rate["registry_lock_busy_pct"] <= 100
        assert rate["cpu_busy_pct"] >= 0
    assert store["scaling_ratio"] > 0
    assert len(store["limits"]) == 5 and all(isinstance(x, str) for x in store["limits"])
    deploy = store["deploy"]
    assert deploy["files"] == result["bundle"]["files"]
    assert deploy["toolkit_deploy_s"] > 0 and deploy["mpremote_cp_s"] > 0
    assert deploy["toolkit_to_mpremote_ratio"] > 0
    assert "store: blank to checked" in proc.stdout and "toolkit / mpremote cp" in proc.stdout

    # The trust part (tools/bench_trust.py), reduced: what must hold holds.
    trust = result["trust"]
    cuts = trust["power_cuts"]
    assert cuts["cuts"] >= 20 and cuts["ok"] is True
    assert cuts["reused_counters"] == cuts["alerts_lost"] == cuts["faults"] == 0
    storms = trust["storms"]
    assert storms["storms_wrong"] == 0 and storms["expected_alarms"] == storms["alerts_heard"] > 0
    load = trust["load"]
    assert load["alerts_expected"] == load["alerts_forwarded"] == load["pressed_at_once"]
    assert load["false_alerts"] == 0 and load["receiver_cpu_s"] > 0
    ack = trust["ack"]
    assert ack["window"]["ack_on_air_s_mean"] < ack["hold"]["ack_on_air_s_mean"]
    assert "power cuts on twin units" in proc.stdout and "press storms" in proc.stdout
    fuzz = trust["fuzz"]
    assert {"wired", "control_point", "frame", "config", "bundle", "board", "capture"} <= set(fuzz)
    assert all(r["crashes"] == r["hangs"] == 0 and not r["secret_seen"] for r in fuzz.values())
    adversary = trust["adversary"]
    assert adversary["attack_frames"] >= 700 and adversary["accepted_total"] == 0
    assert "adversary" in proc.stdout and "fuzzing" in proc.stdout
