"""Is a unit fit for use? A verdict on its readout (amrkit.unit.readout):
each reason it is not, with the next step, so a store knows what to do.
Pure: it judges the fields `amr info` reads, the same over every link.

    reasons = judge(await readout(Unit(link)))
    if reasons:                       # not fit: exit 7 in the CLI
        for r in reasons:
            print(f"{r.reason}: {r.next_step}")

`amr info` shows it after the readout; `amr check` adds its own reasons
(a self-test, a press) to the same list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from amrkit.paths import firmware_module

PROVISION = "run amr provision"
REPROVISION = "re-provision (amr provision)"
NEW_CELL = "replace the cell"


@dataclass(frozen=True)
class Reason:
    """Why a unit is not fit, and what to do about it."""

    reason: str
    next_step: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.reason}: {self.next_step}"


@dataclass(frozen=True)
class Thresholds:
    """The cell voltages a unit is judged by: its own config's, when it
    reports them, else the firmware's defaults."""

    low_battery_mv: int
    battery_floor_mv: int

    @classmethod
    def of(cls, report: dict[str, Any]) -> Thresholds:
        defaults = firmware_module("config").DEFAULTS
        low, floor = report.get("low_battery_mv"), report.get("battery_floor_mv")
        return cls(
            low if isinstance(low, int) else int(defaults["low_battery_mv"]),
            floor if isinstance(floor, int) else int(defaults["battery_floor_mv"]),
        )


def _unusable(value: Any, ok: str) -> str | None:
    """Why a record the unit reports is unusable, or None if it is sound."""
    if value == ok or isinstance(value, dict):
        return None
    return str(value)


def judge(report: dict[str, Any], thresholds: Thresholds | None = None) -> list[Reason]:
    """Every reason the unit of `report` is not fit for use; none: fit."""
    limits = thresholds or Thresholds.of(report)
    reasons: list[Reason] = []
    keys = _unusable(report.get("keys"), "present")
    config = _unusable(report.get("config"), "ok")
    state = _unusable(report.get("state"), "ok")
    if report.get("provisioned") is False and keys == config == "not provisioned":
        reasons.append(Reason("not provisioned", PROVISION))
    else:
        if keys == "missing":
            reasons.append(Reason("keys missing", REPROVISION))
        elif keys is not None:
            reasons.append(Reason(f"keys corrupt ({keys})", REPROVISION))
        if config is not None:
            reasons.append(Reason(f"config unusable ({config})", REPROVISION))
        if state is not None:
            reasons.append(Reason(f"counter state unusable ({state})", REPROVISION))
    reasons += _battery(report, limits)
    fault = report.get("last_fault")
    if fault not in (None, "none"):
        reasons.append(
            Reason(
                f"fault: {fault}",
                "see amr info diagnostics / amr check; clear the diagnostics once it is fixed",
            )
        )
    if report.get("button") == "closed":
        reasons.append(
            Reason("button closed (stuck or held)", "release it; if it stays closed, repair")
        )
    return reasons


def _battery(report: dict[str, Any], limits: Thresholds) -> list[Reason]:
    loaded = report.get("loaded_mv")
    mv, how = (loaded, "under load") if isinstance(loaded, int) else (report.get("battery_mv"), "")
    if not isinstance(mv, int):
        return []
    reading = f"{mv} mV {how}".rstrip()
    if mv < limits.battery_floor_mv:
        return [
            Reason(
                f"battery below floor ({reading}, floor {limits.battery_floor_mv} mV)",
                NEW_CELL,
            )
        ]
    if mv < limits.low_battery_mv:
        return [Reason(f"low battery ({reading}, warning at {limits.low_battery_mv} mV)", NEW_CELL)]
    return []


def verdict_fields(reasons: list[Reason]) -> list[dict[str, str]]:
    """The verdict as `--json` carries it: [{"reason", "next_step"}], empty: fit."""
    return [r.as_dict() for r in reasons]
