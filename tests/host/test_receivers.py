"""Receivers that listen like real ones (amrkit.twin.receivers): the hearing
model against hand-computed cases, the profiles against their sources, and
alerts through a gateway and a screen-off phone from a virtual unit."""

from __future__ import annotations

import dataclasses
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.paths import firmware_dir, firmware_module
from amrkit.twin.receivers import (
    ANDROID_5_LOW_POWER,
    ANDROID_BACKGROUND,
    ANDROID_BALANCED,
    ANDROID_LOW_LATENCY,
    ANDROID_LOW_POWER,
    ANDROID_UNFILTERED_SCREEN_OFF,
    GATEWAY,
    IDEAL,
    PACKET_MS,
    Profile,
    Scanner,
    Span,
    live_listener,
    spans,
    unit_ack_scan,
)
from amrkit.twin.sim import Sim
from amrkit.twin.unit import Boot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import bench_air
from listen_cli import amr_listen
from sim_control import control

# Listens 100 ms in every 1000 ms, loses nothing: window k is [1000k, 1000k + 100)
# on channel k % 3 (phase 0, first channel 0).
SPARSE = Profile("sparse", 100.0, 1000.0, 0.0, 0.0, "test")


def scanner(profile: Profile = SPARSE, seed: int = 0, **fixed: Any) -> Scanner:
    fixed.setdefault("phase_ms", 0.0)
    fixed.setdefault("channel0", 0)
    return Scanner(profile, random.Random(seed), **fixed)


def test_a_window_that_covers_an_advertising_event_hears_it() -> None:
    # One event at 50 ms: its channel-37 packet (channel 0) is inside window 0.
    assert scanner().first_heard(Span(50.0, 60.0, 100.0, "")) == 50.0
    # In window 1 ([1000, 1100), channel 38) the channel-38 packet, 0.5 ms in.
    assert scanner().first_heard(Span(1050.0, 1060.0, 100.0, "")) == 1050.5
    # Window 2 listens on 39: the third packet of the event, 1 ms in.
    assert scanner().first_heard(Span(2010.0, 2020.0, 100.0, "")) == 2011.0


def test_a_window_that_misses_every_event_hears_nothing() -> None:
    # Events from 200 ms to 900 ms all fall between window 0 and window 1.
    assert scanner().first_heard(Span(200.0, 900.0, 100.0, "")) is None
    # A packet that would end after the window closes is not heard either.
    late = 100.0 - PACKET_MS / 2
    assert scanner().first_heard(Span(late, late + 5, 100.0, "")) is None


def test_a_frame_on_the_air_across_a_window_is_heard_at_the_window() -> None:
    # On the air from 500 ms to 1500 ms, events every 100-110 ms: the first
    # packet heard is in window 1 (from 1000 ms, channel 38), within one
    # advertising interval of its opening.
    t = scanner().first_heard(Span(500.0, 1500.0, 100.0, ""))
    assert t is not None and 1000.0 <= t < 1000.0 + 110.0 + 1.0


def test_a_gateway_hears_every_event() -> None:
    lossless = dataclasses.replace(GATEWAY, loss=0.0)
    s = scanner(lossless, seed=3, phase_ms=17.0)
    span = Span(0.0, 10_000.0, 100.0, "")
    events = list(scanner(lossless, seed=3, phase_ms=17.0).events(span))
    heard = list(s.heard(span))
    # One packet per event, on the channel listened to at that moment (an
    # event straddling a channel switch every 60 ms can lose its packet: few).
    assert len(events) - 10 <= len(heard) <= len(events)
    assert len(heard) > 85
    assert scanner(IDEAL).first_heard(Span(123.0, 124.0, 100.0, "")) == 123.0


def test_loss_one_hears_nothing_and_a_suspended_scan_hears_nothing() -> None:
    deaf = dataclasses.replace(GATEWAY, loss=1.0)
    assert scanner(deaf).first_heard(Span(0.0, 60_000.0, 100.0, "")) is None
    assert (
        Scanner(ANDROID_UNFILTERED_SCREEN_OFF, random.Random(1)).first_heard(
            Span(0.0, 60_000.0, 100.0, "")
        )
        is None
    )


def test_same_seed_same_hearing_other_seed_other_phase() -> None:
    span = Span(0.0, 30_000.0, 100.0, "")

    def heard(seed: int) -> list[float]:
        return list(Scanner(ANDROID_BACKGROUND, random.Random(seed)).heard(span))

    assert heard(7) == heard(7) and heard(7)
    assert heard(7) != heard(8)
    assert Scanner(ANDROID_BACKGROUND, random.Random(7)).phase_ms == pytest.approx(
        Scanner(ANDROID_BACKGROUND, random.Random(7)).phase_ms
    )


def test_screen_off_phone_hears_a_burst_one_interval_plus_one_window_long() -> None:
    # Whatever the phase, a frame on the air 10240 + 512 ms holds a whole window.
    lossless = dataclasses.replace(ANDROID_BACKGROUND, loss=0.0)
    for phase in range(0, 10240, 97):
        s = scanner(lossless, phase_ms=float(phase), channel0=phase % 3)
        assert s.first_heard(Span(0.0, 10_800.0, 100.0, "")) is not None, phase


def test_profiles_carry_their_cited_constants() -> None:
    cited = {
        ANDROID_LOW_LATENCY: ("SCAN_MODE_LOW_LATENCY", 100, 100),
        ANDROID_BALANCED: ("SCAN_MODE_BALANCED", 183, 730),
        ANDROID_LOW_POWER: ("SCAN_MODE_LOW_POWER", 140, 1400),
        ANDROID_BACKGROUND: ("SCAN_MODE_SCREEN_OFF_LOW_POWER", 512, 10240),
        ANDROID_5_LOW_POWER: ("SCAN_MODE_LOW_POWER", 500, 5000),
    }
    for profile, (name, window, interval) in cited.items():
        assert (profile.window_ms, profile.interval_ms) == (window, interval)
        assert f"{name}_WINDOW_MS = {window}" in profile.source
        assert f"{name}_INTERVAL_MS = {interval}" in profile.source
        assert "ScanManager.java" in profile.source
    assert "Android 15" in ANDROID_BACKGROUND.source
    assert GATEWAY.continuous and GATEWAY.window_ms == 60
    assert not ANDROID_BACKGROUND.continuous
    assert ANDROID_BACKGROUND.duty == pytest.approx(0.05)


def test_unit_ack_scan_is_what_the_firmware_asks_for() -> None:
    radio = (firmware_dir() / "amr" / "radio.py").read_text()
    window = int(re.search(r"_SCAN_WINDOW_US = const\((\d+)\)", radio).group(1))  # type: ignore[union-attr]
    interval = int(re.search(r"_SCAN_INTERVAL_US = const\((\d+)\)", radio).group(1))  # type: ignore[union-attr]
    ack = unit_ack_scan()
    assert (ack.window_ms, ack.interval_ms) == (window / 1000, interval / 1000)
    # A window longer than the acknowledgement's interval plus advDelay.
    assert ack.window_ms > 110


def test_spans_follow_the_boot_events() -> None:
    boot = Boot(
        started_ms=0,
        reset_cause=0,
        wake_reason=0,
        lines=[],
        events=[
            {"kind": "radio", "on": True, "t": 90},
            {"kind": "advertise", "t": 100, "interval_us": 100000, "data": "aa"},
            {"kind": "advertise", "t": 1100, "interval_us": 100000, "data": "bb"},
            {"kind": "radio", "on": False, "t": 2100},
            {"kind": "radio", "on": True, "t": 3000},
            {"kind": "advertise", "t": 3000, "interval_us": 100000, "data": "cc"},
        ],
        ended_ms=4000,
    )
    assert spans(boot) == [
        Span(100.0, 1100.0, 100.0, "aa"),
        Span(1100.0, 2100.0, 100.0, "bb"),
        Span(3000.0, 4000.0, 100.0, "cc"),
    ]


@pytest.mark.parametrize("profile", [GATEWAY, ANDROID_5_LOW_POWER], ids=lambda p: p.name)
def test_alerts_from_a_virtual_unit_are_verified_and_acknowledged(profile: Profile) -> None:
    result = bench_air.run_profile("esp32c3-coin", profile, presses=3, seed=5)
    assert result["never_heard"] == 0 and result["not_heard_within_bound"] == 0
    p99 = result["alarm_to_verified_ms"]["p99"]
    # Within one scan interval (plus an advertising interval) of the alarm.
    assert p99 is not None and p99 <= profile.interval_ms + 150
    # Acknowledged: the unit heard the ack at its first retry and stopped.
    assert result["retries_per_alert_mean"] == 1
    assert result["advertising_ms_per_alert_mean"] > 0 and result["scanning_ms_per_alert_mean"] > 0


# -- the live radio: `amr sim --receiver` ------------------------------------


def _heard_over_the_live_radio(tmp_path: Path, profile: Profile) -> list[str]:
    """Events `amr listen` reports for a triple tap on a sim unit whose radio
    gives receivers `profile`'s scan windows."""
    with Sim(1, load_board(), tmp_path / "fleet", receiver=profile) as sim:
        bundle = tmp_path / "rx.bundle"
        write_bundle(bundle, [u.known for u in sim.units.values() if u.known], "rx test")
        assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
        burst_s = firmware_module("config").DEFAULTS["burst_ms"] // 1000
        code, events, err = amr_listen(
            bundle, tmp_path / "rx.sqlite", "rx test", "--transport", sim.ble,
            "--duration", str(burst_s + 2),
        )  # fmt: skip
        assert code == 0, err
        return [str(e["event"]) for e in events]


def test_a_gateway_on_the_live_radio_hears_the_alert(tmp_path: Path) -> None:
    assert "alert" in _heard_over_the_live_radio(tmp_path, GATEWAY)


def test_a_suspended_scan_on_the_live_radio_hears_nothing(tmp_path: Path) -> None:
    # Android's unfiltered scan with the screen off: the OS has stopped it.
    assert _heard_over_the_live_radio(tmp_path, ANDROID_UNFILTERED_SCREEN_OFF) == []


def test_each_live_receiver_gets_its_own_scan_phase() -> None:
    now = [0.0]
    listener = live_listener(ANDROID_BACKGROUND, seed=3, clock_ms=lambda: now[0])
    first, second = listener(), listener()
    heard: tuple[list[float], list[float]] = ([], [])
    for step in range(1024):  # one scan interval, an event every 10 ms
        now[0] = step * 10.0
        for hears, times in zip((first, second), heard, strict=True):
            if hears():
                times.append(now[0])
    for times in heard:
        # Only inside its one window of the interval (less the losses).
        assert times and times[-1] - times[0] <= ANDROID_BACKGROUND.window_ms
    assert heard[0][0] != heard[1][0]  # phases of their own
