"""A unit's lifecycle and which steps between its states are allowed.

    stock -> flashed -> provisioned -> checked -> issued -> returned -> wiped
                ^  \\         ^  |        |                    |        |
                |   `--------'  '--------'  (re-provision)      |        |
                `------------------------------------------------------'  (re-flash)
    retired: from stock, flashed, wiped or returned; final.

The guards that need stored facts (a passing check, a verified wipe, keys)
live in amrkit.registry.store; this module is the table alone.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    STOCK = "stock"
    FLASHED = "flashed"
    PROVISIONED = "provisioned"
    CHECKED = "checked"
    ISSUED = "issued"
    RETURNED = "returned"
    WIPED = "wiped"
    RETIRED = "retired"


S = State

# To each state, the states it may be entered from.
ENTERED_FROM: dict[State, frozenset[State]] = {
    S.STOCK: frozenset(),
    S.FLASHED: frozenset({S.STOCK, S.FLASHED, S.PROVISIONED, S.CHECKED, S.WIPED}),
    S.PROVISIONED: frozenset({S.FLASHED, S.PROVISIONED, S.CHECKED, S.WIPED}),
    S.CHECKED: frozenset({S.PROVISIONED, S.CHECKED}),
    S.ISSUED: frozenset({S.CHECKED}),
    S.RETURNED: frozenset({S.ISSUED}),
    S.WIPED: frozenset({S.RETURNED}),
    S.RETIRED: frozenset({S.STOCK, S.FLASHED, S.WIPED, S.RETURNED}),
}

# What to do first, when the asked state cannot be entered from the current one.
_FIRST: dict[State, str] = {
    S.FLASHED: "flash only a unit that is in stock, not issued and wiped after return",
    S.PROVISIONED: "flash the unit first (or wipe it, if it was returned)",
    S.CHECKED: "provision the unit first",
    S.ISSUED: "check the unit first (`amr check`): only a checked unit is issued",
    S.RETURNED: "only an issued unit can be returned",
    S.WIPED: "only a returned unit is wiped (`amr wipe`)",
    S.RETIRED: "retire from stock, flashed, returned or wiped: return an issued unit first, "
    "wipe a provisioned or checked one",
    S.STOCK: "units enter stock only when added (`amr units add`)",
}


def parse_state(name: str) -> State:
    try:
        return State(name.lower())
    except ValueError:
        names = ", ".join(s.value for s in State)
        raise ValueError(f"unknown state {name!r}: one of {names}") from None


def refusal(current: State, asked: State) -> str | None:
    """None if `asked` may follow `current`, else what to do first."""
    if current in ENTERED_FROM[asked]:
        return None
    if current is S.RETIRED:
        return "a retired unit stays retired"
    return _FIRST[asked]
