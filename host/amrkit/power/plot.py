"""The power model's figure: cell voltage under load and days left over the
unit's life, with the warning and floor thresholds and the brownout line."""

from __future__ import annotations

from pathlib import Path

from amrkit.power.report import PowerReport


def plot(report: PowerReport, path: Path) -> None:
    """Write the figure as PNG; OSError if the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fc, br, th = report.forecast, report.brownout, report.thresholds
    days = [p.day for p in fc.points]
    fig = Figure(figsize=(9, 5.5), dpi=110)
    ax = fig.add_subplot()
    ax.plot(days, [p.ocv_mv for p in fc.points], label="open circuit", color="0.6")
    ax.plot(days, [p.gauge_mv for p in fc.points], label="gauge reading (CPU load)")
    ax.plot(days, [p.radio_mv for p in fc.points], label="radio sessions (lowest)")
    by_dod = {round(d, 6): (warm, cold) for d, warm, cold in br.curve}
    pulse = [(fc.day_at(d), warm) for d, (warm, _) in by_dod.items() if d <= fc.end_dod]
    if pulse:
        ax.plot(*zip(*pulse, strict=True), label="worst radio pulse", linestyle=":")
    ax.axhline(
        th.low_battery_mv,
        color="tab:orange",
        linestyle="--",
        label=f"warning {th.low_battery_mv} mV",
    )
    ax.axhline(
        th.battery_floor_mv,
        color="tab:red",
        linestyle="--",
        label=f"floor {th.battery_floor_mv} mV",
    )
    ax.axhline(br.brownout_mv, color="black", label=f"brownout {br.brownout_mv:.0f} mV")
    ax.set_xlabel("days since the cell went in")
    ax.set_ylabel("cell voltage, mV")
    ax.set_ylim(0, 3400)
    ax.grid(alpha=0.3)
    left = ax.twinx()
    left.plot(days, [fc.days - d for d in days], color="tab:green", alpha=0.5, label="days left")
    left.set_ylabel("days of normal use left")
    left.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = left.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize="small")
    ax.set_title(
        f"{report.spec.name}: {fc.days:.0f} days ({fc.years:.2f} y) at {report.policy.temp_c:g} C,"
        f" heartbeat {report.policy.heartbeat_h:g} h"
        + (f", cover {report.policy.cover_per_day:g}/day" if report.policy.cover else "")
    )
    fig.tight_layout()
    fig.savefig(path, format="png")
