"""`amr power`: the battery-life forecast, brownout check and low-battery
thresholds for a board and a usage policy (amrkit.power, docs/power.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import EXIT_BUILD, deployment_option, fail, load_board

_RATE = click.FloatRange(min=0)


def _plot_path(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """A file the figure can be written to, checked before the model runs."""
    if value is None:
        return None
    parent = value.parent if str(value.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"no folder {parent}; create it or give another path")
    if not os.access(parent, os.W_OK) or (value.exists() and not os.access(value, os.W_OK)):
        raise click.BadParameter(f"cannot write {value}: permission denied")
    return value


@click.command("power")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@deployment_option
@click.option(
    "--heartbeat-h",
    type=click.FloatRange(min=1 / 60, max=24),
    default=6.0,
    show_default=True,
    help="Heartbeat interval, hours (firmware: 60 s .. 24 h).",
)
@click.option(
    "--jitter-pct",
    type=click.FloatRange(0, 50),
    default=0.0,
    show_default=True,
    help="Heartbeat jitter, +/- percent (symmetric: no change to the mean rate).",
)
@click.option("--cover/--no-cover", default=False, show_default=True, help="Cover traffic.")
@click.option(
    "--cover-per-day",
    type=click.IntRange(1, 48),
    default=4,
    show_default=True,
    help="Cover sequences a day when --cover is on (firmware: 1 .. 48).",
)
@click.option("--tx-dbm", type=int, help="Advertising TX power, dBm [the board's].")
@click.option("--alerts-per-month", type=_RATE, default=2.0, show_default=True)
@click.option(
    "--checks-per-month",
    type=_RATE,
    default=1.0,
    show_default=True,
    help="Store checks (amr check) a month.",
)
@click.option(
    "--service-per-month",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Service-mode sessions a month.",
)
@click.option(
    "--temp-c",
    type=click.FloatRange(-20, 60),
    default=20.0,
    show_default=True,
    help="Temperature the unit lives at (the brownout check adds a cold case).",
)
@click.option(
    "--standby",
    type=click.Choice(["deep_sleep", "light_sleep"]),
    default="deep_sleep",
    show_default=True,
    help="Between events: deep sleep (the firmware's), or light sleep with a pin"
    " interrupt (every edge seen, at the light-sleep current), for comparison.",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_plot_path,
    help="Also draw the cell's voltage and days left over its life to this PNG.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def power(
    board: str,
    deployment: str | None,
    heartbeat_h: float,
    jitter_pct: float,
    cover: bool,
    cover_per_day: int,
    tx_dbm: int | None,
    alerts_per_month: float,
    checks_per_month: float,
    service_per_month: float,
    temp_c: float,
    standby: str,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Forecast a unit's battery life for a board and a usage policy: charge
    per day by event and power state (times in each state measured by the
    twin running the firmware, or a stated fallback), years on a CR2032,
    the brownout margin at the end of life in the cold, and the low-battery
    thresholds the policy needs. Exit 2 on a bad option, unknown board or a
    plot path that cannot be written."""
    from amrkit.power.forecast import Policy
    from amrkit.power.report import PowerReport
    from amrkit.twin.unit import FirmwareCrash

    spec = load_board(profile_path(board), deployment)
    if spec.power != "coin":
        raise click.BadParameter(
            f"{spec.name} is powered over USB: no cell to forecast; give a coin-cell board",
            param_hint="--board",
        )
    if tx_dbm is not None and tx_dbm not in spec.advertising_ua:
        known = ", ".join(str(k) for k in sorted(spec.advertising_ua))
        raise click.BadParameter(
            f"{spec.name} has no advertising current at {tx_dbm} dBm; profiled: {known}",
            param_hint="--tx-dbm",
        )
    policy = Policy(
        heartbeat_h=heartbeat_h,
        jitter_pct=jitter_pct,
        cover=cover,
        cover_per_day=cover_per_day,
        tx_dbm=tx_dbm,
        alerts_per_month=alerts_per_month,
        checks_per_month=checks_per_month,
        service_per_month=service_per_month,
        temp_c=temp_c,
        standby=standby,
    )
    try:
        report = PowerReport(spec, policy)
    except (FirmwareCrash, RuntimeError) as err:
        fail(f"the twin could not run the firmware to measure its events: {err}", EXIT_BUILD)
    result = report.as_dict()
    if plot is not None:
        from amrkit.power.plot import plot as draw

        try:
            draw(report, plot)
        except OSError as err:
            raise click.BadParameter(
                f"cannot write {plot}: {err.strerror}", param_hint="--plot"
            ) from err
        result["plot"] = str(plot)
    if as_json:
        import json

        click.echo(json.dumps(result))
    else:
        _table(result)


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    life, charge = result["life"], result["charge_per_day_uah"]
    br, th = result["brownout"], result["thresholds"]
    console = Console()
    head = Table(title=f"amr power: {result['board']}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    goal = "met" if life["meets_goal"] else "NOT met"
    head.add_row(
        "forecast",
        f"{life['days']:.0f} days = {life['years']:.2f} years (goal {life['goal_years']:g} y: "
        f"{goal}); ends by {life['limited_by']} at {100 * life['end_dod']:.0f} % discharge",
    )
    head.add_row("capacity", f"{life['capacity_mah']} mAh (derated for load and temperature)")
    head.add_row(
        "charge a day",
        f"{charge['total']} uAh at the profile's currents; {charge['mean_over_life']} uAh "
        "over the life (the converter draws more as the cell sags)",
    )
    margin = br["margin_mv"]
    where = br["browns_out_at_dod"]
    head.add_row(
        "brownout",
        f"margin {margin:+d} mV at end of life, {br['cold_c']:g} C "
        f"({br['worst_session']}: {br['min_mv_end_of_life_cold'][br['worst_session']]} mV "
        f"vs {br['brownout_mv']:.0f} mV); alerts stop at the floor, "
        f"{100 * br['alerts_until_dod']:.1f} % discharge"
        + ("" if where is None else f"; an alert would brown out from {100 * where:.1f} %")
        + (
            ""
            if margin >= 0
            else (
                f"; needs a {_farad(br['bulk_uf_needed'])} bulk capacitor"
                f" (has {_farad(br['bulk_uf'])})"
                if br["bulk_uf_needed"] is not None
                else "; no capacitor that fits fixes it"
            )
        ),
    )
    head.add_row(
        "thresholds",
        f"warning {th['low_battery_mv']} mV ({th['warn_days']:g} days before the end), "
        f"floor {th['battery_floor_mv']} mV (reserve {th['reserve_days']:g} days); "
        f"firmware {th['firmware']['low_battery_mv']}/{th['firmware']['battery_floor_mv']} mV: "
        + ("ok" if th["firmware_satisfies"] else "does NOT satisfy"),
    )
    within = result["cover_per_day_within_goal"]
    head.add_row(
        "cover traffic",
        "no rate keeps the goal" if within is None else f"at most {within} a day within the goal",
    )
    if "plot" in result:
        head.add_row("plot", result["plot"])
    console.print(head)

    events = Table(title="charge a day by event")
    for column in ("event", "per day", "uAh each", "uAh/day", "source"):
        events.add_column(column, justify="left" if column in ("event", "source") else "right")
    by_event = charge["by_event"]
    for name, uah in by_event.items():
        e = result["events"].get(name)
        if e is None:
            events.add_row(name, "", "", f"{uah:.1f}", "profile / cell model")
        else:
            events.add_row(name, f"{e['per_day']:g}", f"{e['uah']:.1f}", f"{uah:.1f}", e["source"])
    console.print(events)
    states = Table(title="charge a day by power state")
    states.add_column("state")
    states.add_column("uAh/day", justify="right")
    for state, uah in charge["by_state"].items():
        states.add_row(state, f"{uah:.1f}")
    console.print(states)


def _farad(uf: float) -> str:
    if uf >= 1_000_000:
        return f"{uf / 1e6:g} F"
    if uf >= 1000:
        return f"{uf / 1000:g} mF"
    return f"{uf:g} uF"
