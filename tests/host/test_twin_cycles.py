"""The unmodified firmware under the unix port, driven by the twin supervisor:
boot -> sleep -> wake cycles, alerts from real gestures, power cuts at every
flash commit, and faults on missing or corrupt stored data."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from amrkit.boards import load_board
from amrkit.paths import firmware_module
from amrkit.protocol import Kind, KnownUnit, decode, rid, service_ad
from amrkit.twin.energy import account
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, service_presses, taps, trace
from amrkit.twin.unit import Boot, VirtualUnit

BOARD = load_board()


def frames(unit: VirtualUnit) -> list[tuple[int, int, int]]:
    """(kind, alert id, counter) of every frame the unit advertised, verified
    with the unit's keys; a frame that does not verify fails the test."""
    ads = [
        bytes.fromhex(e["data"])
        for b in unit.boots
        for e in b.events
        if e["kind"] == "advertise" and not e["connectable"]  # service mode is not a frame
    ]
    if not ads:
        return []
    keys = KNOWN[unit.directory].keys
    table = {rid(keys.id, c): c for c in range(4096)}
    return [
        (int(f.kind), f.alert_id, f.counter)
        for f in (decode(keys.enc, table[ad[2:10]], ad) for ad in ads)
    ]


def alerts(unit: VirtualUnit) -> set[int]:
    return {alert for kind, alert, _ in frames(unit) if kind in (ALERT, RETRY)}


KNOWN: dict[Path, KnownUnit] = {}
ALERT, RETRY, HEARTBEAT = int(Kind.ALERT), int(Kind.ALERT_RETRANSMISSION), int(Kind.HEARTBEAT)


def make_unit(directory: Path) -> VirtualUnit:
    u = VirtualUnit(directory, BOARD)
    KNOWN[directory] = provision(u)
    return u


@pytest.fixture
def unit(tmp_path: Path) -> VirtualUnit:
    return make_unit(tmp_path / "unit")


def test_cold_boot_schedules_heartbeat_and_sleeps(unit: VirtualUnit) -> None:
    boot = unit.power_on()
    beat_ms = firmware_module("config").DEFAULTS["heartbeat_s"] * 1000
    assert boot.sleep_ms is not None
    assert boot.sleep_ms == pytest.approx(beat_ms, abs=2000)
    assert frames(unit) == []
    unit.run_until(beat_ms + 5000)
    assert [k for k, _, _ in frames(unit)] == [HEARTBEAT]  # by timer wake


def test_triple_tap_with_bounce_yields_exactly_one_alert(unit: VirtualUnit) -> None:
    unit.power_on()
    rng = Rng(5)
    unit.press(10_000, trace(rng, taps(rng, 3)))
    unit.run_until(10_000 + 120_000)
    sent = frames(unit)
    assert alerts(unit) == {sent[0][1]}
    assert sent[0][0] == ALERT  # the first frame is the alert burst
    assert all(k == RETRY for k, _, _ in sent[1:])  # then retries of the same alert
    counters = [c for _, _, c in sent]
    assert len(set(counters)) == len(counters)


def test_retries_back_off_but_never_more_than_60_s_apart(unit: VirtualUnit) -> None:
    unit.power_on()
    unit.press(1000, trace(Rng(1), [(0, 2000)]))
    unit.run_until(15 * 60_000)
    times = [e["t"] for b in unit.boots for e in b.events if e["kind"] == "advertise"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) > 10
    assert max(gaps) <= 60_000 + 4_000  # back-off cap, plus advertising and boot time
    assert gaps[1] < gaps[2] < gaps[3] < gaps[4]  # doubling at first


def test_second_alarm_during_an_alert_is_not_lost(unit: VirtualUnit) -> None:
    unit.power_on()
    rng = Rng(9)
    unit.press(5_000, trace(rng, taps(rng, 3)))
    unit.press(9_000, trace(rng, [(0, 1800)]))  # during the first burst's retries
    unit.run_until(5 * 60_000)
    assert len(alerts(unit)) == 2


def test_single_short_press_wakes_but_raises_nothing(unit: VirtualUnit) -> None:
    unit.power_on()
    unit.press(5_000, trace(Rng(4), [(0, 250)]))
    boots = unit.run_until(60_000)
    assert len(boots) == 1 and frames(unit) == []
    assert any("rejected" in line for line in boots[0].lines)


@pytest.mark.parametrize("cut_after", [False, True], ids=["before-commit", "after-commit"])
def test_power_cut_at_every_flash_commit_never_loses_alert_or_reuses_counter(
    tmp_path: Path, cut_after: bool
) -> None:
    # Commits during one run: 1 = the alert (id + counter block), then the
    # block renewals as retries use counters up.
    for cut in range(1, 4):
        u = make_unit(tmp_path / f"cut{cut}-{cut_after}")
        u.power_on()
        rng = Rng(cut)
        u.press(2_000, trace(rng, taps(rng, 3)))
        boots = u.run_until(150 * 60_000, cut_at_commit=cut, cut_after=cut_after)
        assert boots[-1].power_cut, f"commit {cut} never happened"
        u.power_on()  # the cell comes back
        u.run_until(u.clock_ms + 10 * 60_000)
        sent = frames(u)
        counters = [c for _, _, c in sent]
        assert len(set(counters)) == len(counters), f"counter reused after cut at commit {cut}"
        if cut_after or cut > 1:
            # The alert was persisted before any frame: it goes on after power returns.
            after = [b for b in u.boots if b.started_ms > boots[-1].ended_ms]
            resumed = {
                a for k, a, c in frames(u) if k in (ALERT, RETRY) and c >= first_after(u, after)
            }
            assert resumed, f"alert lost after cut at commit {cut}"
        else:
            # Cut before the alert's commit: nothing was sent for it, and the
            # unit is intact (it can raise the alarm again).
            assert alerts(u) == set()


def first_after(unit: VirtualUnit, boots: list[Boot]) -> int:
    """The first counter sent in these boots."""
    known = KNOWN[unit.directory]
    table = {rid(known.keys.id, c): c for c in range(4096)}
    return min(
        table[bytes.fromhex(e["data"])[2:10]]
        for b in boots
        for e in b.events
        if e["kind"] == "advertise"
    )


def test_missing_config_is_a_visible_fault(tmp_path: Path) -> None:
    u = VirtualUnit(tmp_path / "blank", BOARD)
    boot = u.power_on()
    assert any("FAULT missing" in line for line in boot.lines)
    assert frames(u) == []
    diag = firmware_module("diag").decode(firmware_module("rtcmem").unpack(u.rtc_memory())[0])
    assert diag.faults == 1 and diag.last_error != 0


@pytest.mark.parametrize("key", ["p0", "s0"])
def test_corrupt_record_is_a_visible_fault_not_defaults(unit: VirtualUnit, key: str) -> None:
    nvs = unit.nvs()
    blob = bytearray.fromhex(nvs["amr"][key]["blob"])
    blob[len(blob) // 2] ^= 0x40
    unit.write_nvs("amr", {key: bytes(blob)})
    boot = unit.power_on()
    assert any("FAULT corrupt" in line for line in boot.lines), boot.lines
    unit.press(1000, trace(Rng(2), [(0, 2500)]))
    unit.run_until(60_000)
    assert frames(unit) == []  # no alert on guessed state


def test_diagnostics_survive_deep_sleep_but_not_power_loss(unit: VirtualUnit) -> None:
    unit.power_on()
    rng = Rng(3)
    unit.press(2_000, trace(rng, [(0, 200)]))
    unit.run_until(30_000)
    diag_mod, rtc = firmware_module("diag"), firmware_module("rtcmem")
    d = diag_mod.decode(rtc.unpack(unit.rtc_memory())[0])
    assert d.boots == 2 and d.reset_deepsleep == 1 and d.presses == 1 and d.gestures_rejected == 1
    unit.power_on()
    d = diag_mod.decode(rtc.unpack(unit.rtc_memory())[0])
    assert d.boots == 1 and d.reset_power_on == 1


def test_energy_accounts_every_millisecond_against_the_board(unit: VirtualUnit) -> None:
    unit.power_on()
    unit.press(5_000, trace(Rng(6), [(0, 2000)]))
    unit.run_until(2 * 3600_000)
    energy = account(BOARD, unit.boots, unit.clock_ms)
    assert sum(energy.ms.values()) == unit.clock_ms  # nothing lost or counted twice
    assert energy.ms["advertising"] >= 3000  # at least the alert's burst
    # Listening for the acknowledgement: the scan window's share (30 %) of
    # the time the alert was on the air, and never connected outside service mode.
    assert 0.2 * energy.ms["advertising"] < energy.ms["scanning"] < energy.ms["advertising"]
    assert energy.ms["connected"] == 0
    expected = sum(BOARD.currents_ua[s] * ms for s, ms in energy.ms.items()) / 3_600_000
    assert energy.uah == pytest.approx(expected)
    # Two hours of mostly deep sleep cost far less than an hour awake would.
    assert energy.uah < BOARD.currents_ua["cpu_active"]


def test_alert_burst_does_not_wait_for_a_heartbeat_on_the_air(unit: VirtualUnit) -> None:
    boot = unit.power_on()
    heartbeat_at = boot.ended_ms + (boot.sleep_ms or 0)
    rng = Rng(13)
    # The press wakes the unit just as its heartbeat falls due: the heartbeat
    # goes on the air first, and the alarm comes while it is still there.
    unit.press(heartbeat_at - 300, trace(rng, taps(rng, 3, tap_ms=(100, 150), gap_ms=(260, 300))))
    woke = unit.run_until(heartbeat_at + 10_000)[0]
    kinds = [k for k, _, _ in frames(unit)]
    assert kinds[:2] == [HEARTBEAT, ALERT]
    times = [e["t"] for e in woke.events if e["kind"] == "advertise"]
    alarm = next(
        int(line.split("[")[1].split(" ")[0]) for line in woke.lines if "gesture: alarm" in line
    )
    assert times[1] - times[0] < 1000  # cut the heartbeat's 1 s window short
    assert times[1] - (woke.started_ms + alarm) <= 50  # and went out right after the alarm


def test_a_cell_that_sags_under_the_radio_browns_out_but_the_alert_waits(
    unit: VirtualUnit,
) -> None:
    # The twin's cell has no reservoir capacitor, so the radio's sag is its
    # full I * R: a unit configured with a low battery floor lets the radio
    # start on a cell that sags below the brownout voltage.
    defaults = firmware_module("config").DEFAULTS
    KNOWN[unit.directory] = provision(
        unit, {**defaults, "low_battery_mv": 2450, "battery_floor_mv": 2200}
    )
    unit.power_on()
    # A cold, tired coin cell: 2.96 V open circuit, 25 ohm inside. Under the
    # CPU's 30 mA it reads 2.21 V, above the unit's battery floor; the radio's
    # 40 mA takes it to 1.96 V, under the board's brownout voltage.
    unit.set_battery(2960, resistance_ohm=25)
    assert unit.loaded_mv("advertising") < BOARD.brownout_mv < unit.loaded_mv("cpu_active")
    unit.press(10_000, trace(Rng(4), [(0, 2000)]))
    unit.run_until(10 * 60_000)
    browned = [b for b in unit.boots if b.brownout]
    assert browned, "the radio never started"
    assert not alerts(unit)
    # Each brownout is followed by a rest, not a boot loop: one brownout per
    # rest, and one more when the hold that raised the alarm is released.
    assert len(browned) <= (10 * 60_000 - 10_000) // 60_000 + 2
    held = [b for b in browned if b.started_ms < 12_000]
    assert len(held) <= 2, [b.started_ms for b in held]
    diag = firmware_module("diag").decode(firmware_module("rtcmem").unpack(unit.rtc_memory())[0])
    assert diag.reset_brownout == len(browned) and diag.alerts == 1
    # The ADC reads the cell under the CPU's load, not its open-circuit voltage.
    loaded = unit.loaded_mv("cpu_active")
    assert any(f"battery {loaded} mV" in line for b in unit.boots for line in b.lines)
    # The cell warms up: the pending alert goes out.
    unit.set_battery(2960, resistance_ohm=8)
    unit.run_until(unit.clock_ms + 5 * 60_000)
    sent = frames(unit)
    assert len(alerts(unit)) == 1 and any(kind == RETRY for kind, _, _ in sent)


def test_an_alarm_during_service_mode_closes_it_and_goes_out(unit: VirtualUnit) -> None:
    unit.power_on()
    rng = Rng(8)
    gesture = service_presses(rng)
    unit.press(10_000, trace(rng, gesture))
    # The wearer holds the button while the unit waits for a host.
    unit.press(10_000 + gesture[-1][0] + 8_000, trace(rng, [(0, 2000)]))
    unit.run_until(10 * 60_000)
    log = [line for b in unit.boots for line in b.lines]
    opened = next(i for i, line in enumerate(log) if "service mode: connectable" in line)
    closed = next(i for i, line in enumerate(log) if "service mode closed (alarm)" in line)
    assert opened < closed
    assert any("alert 1 reserved" in line for line in log[closed:])
    assert len(alerts(unit)) == 1
    # While service mode was open the unit advertised connectable, and only then.
    connectable = [e for b in unit.boots for e in b.events if e.get("connectable")]
    service_length = len(service_ad(bytes(16), 0))
    assert connectable and all(len(bytes.fromhex(e["data"])) == service_length for e in connectable)


def test_below_the_battery_floor_cover_traffic_does_not_keep_the_unit_waking(
    unit: VirtualUnit,
) -> None:
    """Below the floor nothing is sent, so a cover sequence has nothing to
    wait for: the unit wakes for its cover and heartbeat schedule, not at
    every longest back-off as a pending alert makes it."""
    defaults = firmware_module("config").DEFAULTS
    KNOWN[unit.directory] = provision(unit, {**defaults, "cover_per_day": 48})
    unit.set_battery(defaults["battery_floor_mv"] - 100)
    unit.power_on()
    hours = 6
    unit.run_until(hours * 3600_000)
    assert not frames(unit)  # below the floor: silent
    # 48 covers a day: 12 expected in 6 h; far fewer wakes than one a minute.
    assert len(unit.boots) < 40, len(unit.boots)
