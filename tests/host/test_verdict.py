"""The verdict on a unit's readout (amrkit.unit.verdict): each reason a
unit is not fit for use comes with its next step; a sound unit has none."""

from __future__ import annotations

from typing import Any

from amrkit.paths import firmware_module
from amrkit.unit.verdict import Reason, Thresholds, judge, verdict_fields

SOUND: dict[str, Any] = {
    "unit_id": "a090975aa40891f3",
    "battery_mv": 3000,
    "loaded_mv": 2990,
    "button": "open",
    "last_fault": "none",
    "config": "ok",
    "state": {"counter_hwm": 0, "pending_alerts": 0},
    "keys": "present",
    "low_battery_mv": 2450,
    "battery_floor_mv": 2200,
}


def reasons(**changes: Any) -> list[str]:
    return [str(r) for r in judge({**SOUND, **changes})]


def test_a_sound_unit_is_fit() -> None:
    assert judge(SOUND) == []
    assert verdict_fields(judge(SOUND)) == []


def test_a_blank_unit_is_not_provisioned() -> None:
    blank = {  # what a blank unit's info says (firmware/amr/commands.py)
        "provisioned": False,
        "unit_id": None,
        "keys": "not provisioned",
        "config": "not provisioned",
        "state": "missing",
    }
    assert reasons(**blank) == ["not provisioned: run amr provision"]


def test_corrupt_records_say_re_provision() -> None:
    assert reasons(keys="corrupt") == ["keys corrupt (corrupt): re-provision (amr provision)"]
    assert reasons(keys="missing") == ["keys missing: re-provision (amr provision)"]
    (config,) = reasons(config="config field hold_ms=99999 out of range 800..5000")
    assert config.startswith("config unusable (config field hold_ms") and "re-provision" in config
    assert reasons(state="corrupt") == [
        "counter state unusable (corrupt): re-provision (amr provision)"
    ]


def test_battery_is_judged_under_load_by_the_units_own_thresholds() -> None:
    assert reasons(loaded_mv=2380) == [
        "low battery (2380 mV under load, warning at 2450 mV): replace the cell"
    ]
    assert reasons(loaded_mv=2100) == [
        "battery below floor (2100 mV under load, floor 2200 mV): replace the cell"
    ]
    assert reasons(loaded_mv=2380, low_battery_mv=2300) == []
    # Without a loaded reading, the reading at rest; without thresholds, the
    # firmware's defaults.
    default = firmware_module("config").DEFAULTS["low_battery_mv"]
    report = {k: v for k, v in SOUND.items() if k not in ("loaded_mv", "low_battery_mv")}
    assert [str(r) for r in judge({**report, "battery_mv": default - 50})] == [
        f"low battery ({default - 50} mV, warning at {default} mV): replace the cell"
    ]
    assert judge({**SOUND, "loaded_mv": 2380}, Thresholds(2300, 2200)) == []


def test_a_fault_and_a_closed_button_are_reasons() -> None:
    assert reasons(last_fault="stuck button (boot 12)") == [
        "fault: stuck button (boot 12): see amr info diagnostics / amr check; "
        "clear the diagnostics once it is fixed"
    ]
    (button,) = judge({**SOUND, "button": "closed"})
    assert button.reason.startswith("button closed")
    assert verdict_fields([Reason("a", "b")]) == [{"reason": "a", "next_step": "b"}]
