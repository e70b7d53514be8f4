"""Power figures for `make bench`: the battery-life forecast of every coin-cell
board for a set of usage policies, and the brownout margin at end of life
(amrkit.power, the model behind `amr power`; each board's events timed on
its twin). Life is reported against the 2-year goal as a ratio."""

from __future__ import annotations

from typing import Any

from amrkit.boards import board_names, load_board
from amrkit.power.forecast import Policy
from amrkit.power.report import GOAL_YEARS, PowerReport

# The default policy first: a heartbeat every 6 h, 2 alerts and 1
# store check a month, cover traffic off, 20 C.
POLICIES: dict[str, Policy] = {
    "default": Policy(),
    "cover 1/day": Policy(cover=True, cover_per_day=1),
    "cover 4/day": Policy(cover=True, cover_per_day=4),
    "heartbeat 1 h": Policy(heartbeat_h=1),
    "default at 0 C": Policy(temp_c=0),
    # The standby that would see every edge of a gesture (docs/firmware.md).
    "light-sleep standby": Policy(standby="light_sleep"),
}


def figures() -> dict[str, Any]:
    boards: dict[str, Any] = {}
    for name in board_names():
        board = load_board(name)
        if board.power != "coin":  # a USB-powered board has no battery life
            continue
        rows = {}
        for label, policy in POLICIES.items():
            report = PowerReport(board, policy).as_dict()
            life, brownout = report["life"], report["brownout"]
            rows[label] = {
                "years": life["years"],
                "to_goal_ratio": round(life["years"] / GOAL_YEARS, 2),
                "limited_by": life["limited_by"],
                "uah_per_day": report["charge_per_day_uah"]["total"],
                "brownout_margin_mv": brownout["margin_mv"],
                "worst_session": brownout["worst_session"],
            }
        boards[name] = rows
    margins = [row["brownout_margin_mv"] for rows in boards.values() for row in rows.values()]
    return {
        "goal_years": GOAL_YEARS,
        "boards": boards,
        "min_brownout_margin_mv": min(margins),
    }
