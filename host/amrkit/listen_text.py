"""`amr listen` for a person: one sentence per event, with the local time
and the unit's name.

Names come from the store's registry (`--registry`: the case an issued unit
is under) and from a file (`--names`, which wins): a JSON object {unit id:
label}, or lines "UNIT_ID LABEL" (# starts a comment).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amrkit.registry import UnitRecord

Names = dict[str, str]


class NamesError(ValueError):
    """A names file that cannot be read; says which line and the form expected."""


MAX_NAMES_BYTES = 4 * 2**20
NAMES_FORMS = 'a JSON object {"UNIT_ID": "label"}, or lines "UNIT_ID LABEL"'


def load_names(path: Path) -> Names:
    """Unit id (lower-case hex) -> label, from a names file."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_NAMES_BYTES + 1)
        text = raw.decode()
    except (OSError, UnicodeDecodeError) as err:
        raise NamesError(f"cannot read the names file {path}: {err}; give {NAMES_FORMS}") from err
    if len(raw) > MAX_NAMES_BYTES:
        raise NamesError(
            f"{path} is larger than {MAX_NAMES_BYTES // 2**20} MiB, not a names file; "
            f"give {NAMES_FORMS}"
        )
    if text.lstrip().startswith("{"):
        try:
            table = json.loads(text)
        except ValueError as err:
            raise NamesError(f"{path}: not JSON ({err}); give {NAMES_FORMS}") from err
        except RecursionError:
            raise NamesError(f"{path}: JSON nested too deeply; give {NAMES_FORMS}") from None
        if not isinstance(table, dict):
            raise NamesError(f"{path}: JSON, but not an object; give {NAMES_FORMS}")
        if not all(isinstance(v, str) for v in table.values()):
            raise NamesError(f"{path}: every label must be a string; give {NAMES_FORMS}")
        return {str(k).lower(): v for k, v in table.items()}
    names: Names = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        unit, _, label = line.partition(" ")
        if not label.strip():
            raise NamesError(f"{path}:{n}: no label after the unit id; give {NAMES_FORMS}")
        names[unit.lower()] = label.strip()
    return names


def registry_names(units: Iterable[UnitRecord]) -> Names:
    """Names from the store's registry: the case an issued unit is under (what
    dispatch looks up), else the unit's state. Never a person's name: the
    registry holds none."""
    return {
        u.unit_id: f"case {u.case_ref}" if u.case_ref else f"unit ({u.state.value})" for u in units
    }


def label(names: Names, unit: str) -> str:
    """How a unit is called in the output: its name and the start of its id, or its id."""
    name = names.get(unit)
    return f"{name} [{unit[:8]}]" if name else unit


def local_time(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    except (OverflowError, OSError, ValueError):  # NaN, or past what a date shows
        return f"t={t}"


_WHAT = {
    "heartbeat": "heartbeat",
    "test_press": "test press",
    "low_battery": "low battery reported",
    "fault": "fault reported",
    "supervision_restored": "heard again: supervision restored",
}


def describe(event: dict[str, Any], names: Names) -> str:
    """One line for a person: when, which unit, what happened and how it was heard."""
    kind = event.get("event", "?")
    if kind == "alert":
        what = f"ALERT {event.get('alert_id')}"
        if event.get("late"):
            delay = event.get("delay_s")
            ago = f"about {delay / 3600:.1f} h" if delay else "earlier"
            what += f" (late: sent {ago} before it was heard)"
    elif kind == "supervision_lost":
        what = f"SUPERVISION LOST: not heard for {event.get('silent_s')} s"
    else:
        what = _WHAT.get(kind, kind.replace("_", " "))
    details = []
    if event.get("attempt"):
        details.append(f"retry {event['attempt']}")
    if event.get("battery_pct") is not None:
        details.append(f"battery {event['battery_pct']}%")
    for flag, words in (
        ("low_battery", "battery low"),
        ("below_floor", "battery below floor"),
        ("fault", "unit has a fault"),
    ):
        if event.get(flag) is True and kind != flag:
            details.append(words)
    if event.get("rssi") is not None:
        details.append(f"{event['rssi']} dBm")
    line = f"{local_time(float(event.get('t', 0)))}  {label(names, str(event.get('unit')))}: {what}"
    return line + (f" ({', '.join(details)})" if details else "")
