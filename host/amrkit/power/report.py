"""One run of the power model for a board and a policy, as the CLI shows it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from amrkit.boards import Board
from amrkit.paths import firmware_module
from amrkit.power.brownout import Brownout, check
from amrkit.power.events import EventCost, event_costs
from amrkit.power.forecast import Forecast, Policy, forecast
from amrkit.power.spec import PowerSpec, power_spec, radio_timing
from amrkit.power.thresholds import Thresholds, thresholds

GOAL_YEARS = 2.0


class PowerReport:
    def __init__(self, board: Board, policy: Policy) -> None:
        self.spec: PowerSpec = power_spec(board)
        self.policy = policy
        self.events: dict[str, EventCost] = event_costs(board)
        self.forecast: Forecast = forecast(self.spec, self.events, policy)
        # Alerts go out while the gauge reads above the firmware's floor.
        floor = firmware_module("config").DEFAULTS["battery_floor_mv"]
        self.brownout: Brownout = check(
            self.spec,
            radio_timing(),
            self.forecast.end_dod,
            policy.temp_c,
            policy.tx_dbm,
            alerts_until_dod=self.forecast.dod_at_gauge(floor),
        )
        currents = self.spec.currents_at(policy.tx_dbm)
        self.thresholds: Thresholds = thresholds(
            self.forecast, self.events["alert_unacked"], currents
        )
        self.currents = currents

    def cover_per_day_within(self, years: float = GOAL_YEARS) -> int | None:
        """The most cover sequences a day (firmware range 1..48) that keep the
        forecast at `years`; None if not even one does."""
        best = None
        for n in range(1, 49):
            policy = replace(self.policy, cover=True, cover_per_day=n)
            if forecast(self.spec, self.events, policy).years < years:
                break
            best = n
        return best

    def as_dict(self) -> dict[str, Any]:
        fc, br, th = self.forecast, self.brownout, self.thresholds
        rates = self.policy.rates_per_day()
        return {
            "board": self.spec.name,
            "policy": self.policy.as_dict(),
            "life": {
                "days": round(fc.days, 1),
                "years": round(fc.years, 2),
                "limited_by": fc.limited_by,
                "end_dod": round(fc.end_dod, 3),
                "capacity_mah": round(fc.capacity_mah, 1),
                "goal_years": GOAL_YEARS,
                "meets_goal": fc.years >= GOAL_YEARS and br.ok,
            },
            "charge_per_day_uah": {
                "total": round(fc.budget.total, 1),
                "mean_over_life": round(sum(p.uah_per_day for p in fc.points) / len(fc.points), 1),
                "by_event": {k: round(v, 1) for k, v in fc.budget.by_event.items()},
                "by_state": {k: round(v, 1) for k, v in fc.budget.by_state.items()},
            },
            "events": {
                name: {
                    "per_day": round(rates[name], 4),
                    "ms": {s: round(ms) for s, ms in e.ms.items() if ms},
                    "uah": round(e.uah(self.currents), 2),
                    "source": e.source,
                }
                for name, e in self.events.items()
                if name in rates
            },
            "brownout": {
                "brownout_mv": br.brownout_mv,
                "bulk_uf": br.bulk_uf,
                "cold_c": br.cold_c,
                "end_dod": round(br.end_dod, 3),
                "min_mv_end_of_life_cold": {k: round(v) for k, v in br.min_mv.items()},
                "margin_mv": round(br.margin_mv),
                "fresh_margin_mv": round(br.fresh_margin_mv),
                "worst_session": br.worst_session,
                "browns_out_at_dod": br.browns_out_at_dod,
                "browns_out_at_dod_warm": br.browns_out_at_dod_warm,
                "alerts_until_dod": round(br.alerts_until_dod, 3),
                "bulk_uf_needed": br.bulk_uf_needed,
                "ok": br.ok,
            },
            "thresholds": {
                "low_battery_mv": th.low_battery_mv,
                "battery_floor_mv": th.battery_floor_mv,
                "warn_days": round(th.warn_days, 1),
                "reserve_days": round(th.reserve_days, 1),
                "reserve_uah": round(th.reserve_uah),
                "unacked_alert_minutes": th.unacked_minutes,
                "firmware": {
                    "low_battery_mv": th.firmware_low_battery_mv,
                    "battery_floor_mv": th.firmware_battery_floor_mv,
                },
                "firmware_satisfies": th.firmware_satisfies,
                "in_firmware_range": th.in_range,
            },
            "cover_per_day_within_goal": self.cover_per_day_within(),
        }
