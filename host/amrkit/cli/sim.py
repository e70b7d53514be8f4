"""`amr sim`: virtual units that real tools reach, and the commands that act
on a running sim through its control port (amrkit.twin.control says how
they find it)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import (
    EXIT_UNIT,
    deployment_option,
    echo_fields,
    fail,
    load_board,
    writable_dir,
)
from amrkit.twin.receivers import PROFILES

F = TypeVar("F", bound=Callable[..., Any])


@click.group(invoke_without_command=True)
@click.option("--units", default=1, show_default=True, help="How many virtual units.")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@deployment_option
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the units' flash and state here, across runs [a temporary folder].",
)
@click.option("--blank", is_flag=True, help="Units with nothing provisioned (a factory-new board).")
@click.option(
    "--receiver",
    type=click.Choice(sorted(PROFILES)),
    help="How receivers that connect to the radio listen: a phone's scan windows and"
    " losses (amrkit.twin.receivers) [every advertising event heard].",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1000.0,
    show_default=True,
    help="Virtual seconds per second of deep sleep.",
)
@click.pass_context
def sim(
    ctx: click.Context,
    units: int,
    board: str,
    deployment: str | None,
    directory: Path | None,
    blank: bool,
    receiver: str | None,
    speed: float,
) -> None:
    """Run virtual units until interrupted: one JSON line per unit says how to
    reach it (serial URL, BLE transport, control port); at the end, one line
    per unit with the charge it drew.

    With a command (press, service, battery, ...): act on the running sim
    through its control port, found by --control HOST:PORT, else
    $AMR_SIM_CONTROL, else the file the running sim writes
    ($AMR_SIM_RUNTIME_DIR or $XDG_RUNTIME_DIR or /tmp/amr-UID, then sim.json)."""
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from amrkit.twin.control import announce, withdraw
    from amrkit.twin.sim import Sim, SimError

    profile = load_board(profile_path(board), deployment)
    if directory is not None:
        writable_dir(directory, "--dir")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        listens = None if receiver is None else PROFILES[receiver]
        with Sim(units, profile, directory, blank=blank, speed=speed, receiver=listens) as fleet:
            for sim_unit in fleet.units.values():
                click.echo(json.dumps(sim_unit.announce()), nl=True)
            sys.stdout.flush()
            where = announce(fleet.control, list(fleet.units))
            try:
                with contextlib.suppress(KeyboardInterrupt):
                    done.wait()
            finally:
                withdraw(where)
            for status in fleet.command({"cmd": "status"})["units"]:
                click.echo(json.dumps(status))
    except SimError as err:
        raise click.UsageError(str(err)) from err


def control_options(command: F) -> F:
    """--control and --json, which every command on a running sim takes."""
    command = click.option(
        "--json", "as_json", is_flag=True, help="Print the sim's reply as JSON."
    )(command)
    return click.option(
        "--control",
        metavar="HOST:PORT",
        help="The sim's control port [$AMR_SIM_CONTROL, else the running sim's file].",
    )(command)


def _print_status(status: dict[str, Any]) -> None:
    status = {k: v for k, v in status.items() if k != "ok"}
    energy = status.pop("energy", None)
    if isinstance(energy, dict):
        status["charge_uah"] = energy.get("uah")
    echo_fields(dict(sorted(status.items())))


def run_command(control: str | None, as_json: bool, command: dict[str, Any]) -> dict[str, Any]:
    """Send one command to the running sim; print its reply (or fail saying why)."""
    from amrkit.twin.control import ControlError, find_control, send

    try:
        reply = send(find_control(control), command)
    except ControlError as err:
        fail(str(err), EXIT_UNIT)
    if not reply.get("ok"):
        error = str(reply.get("error", "refused"))
        if "did not answer" in error:
            fail(f"{error}; is the sim overloaded? try again", EXIT_UNIT)
        fail(f"the sim refused {command.get('cmd')}: {error}", 2)
    if as_json:
        click.echo(json.dumps(reply))
    elif "units" in reply:
        for i, status in enumerate(reply["units"]):
            if i:
                click.echo()
            _print_status(status)
    else:
        _print_status(reply)
    return reply


UNIT = click.argument("unit", metavar="UNIT")


@sim.command()
@UNIT
@click.option("--taps", type=click.IntRange(1, 20), help="Instead: this many quick taps.")
@click.option(
    "--hold",
    type=click.IntRange(1, 60_000),
    help="Hold the button this many ms [200: one short press].",
)
@click.option("--no-bounce", is_flag=True, help="Clean contact edges (no bounce).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the bounce pattern.")
@control_options
def press(
    unit: str,
    taps: int | None,
    hold: int | None,
    no_bounce: bool,
    seed: int,
    control: str | None,
    as_json: bool,
) -> None:
    """Press UNIT's button: one press, a hold (--hold MS: 1500 raises the
    alarm) or taps (--taps 3 raises the alarm)."""
    if taps is not None and hold is not None:
        raise click.UsageError("give --taps or --hold, not both")
    command: dict[str, Any] = {"unit": unit, "bounce": not no_bounce, "seed": seed}
    if taps is not None:
        command.update(cmd="taps", count=taps)
    else:
        command.update(cmd="press", duration_ms=hold or 200)
    run_command(control, as_json, command)


@sim.command()
@UNIT
@control_options
def service(unit: str, control: str | None, as_json: bool) -> None:
    """Make the maintenance gesture on UNIT: it opens service mode."""
    run_command(control, as_json, {"cmd": "service", "unit": unit})


@sim.command()
@UNIT
@click.argument("millivolts", metavar="MV", type=click.IntRange(0, 5000))
@click.option(
    "--resistance",
    type=click.FloatRange(0, 1000),
    help="The cell's internal resistance, ohms (a CR2032: 10-100).",
)
@control_options
def battery(
    unit: str, millivolts: int, resistance: float | None, control: str | None, as_json: bool
) -> None:
    """Give UNIT a cell of MV millivolts (open circuit)."""
    command: dict[str, Any] = {"cmd": "battery", "unit": unit, "mv": millivolts}
    if resistance is not None:
        command["resistance_ohm"] = resistance
    run_command(control, as_json, command)


@sim.command("power-cut")
@UNIT
@click.option("--at-next-write", is_flag=True, help="At UNIT's next flash write instead of now.")
@control_options
def power_cut(unit: str, at_next_write: bool, control: str | None, as_json: bool) -> None:
    """Pull UNIT's cell (now, or at its next flash write)."""
    command: dict[str, Any] = {"cmd": "power_cut", "unit": unit}
    if at_next_write:
        command["at_next_write"] = True
    run_command(control, as_json, command)


@sim.command("power-on")
@UNIT
@control_options
def power_on(unit: str, control: str | None, as_json: bool) -> None:
    """Put UNIT's cell back in: it boots."""
    run_command(control, as_json, {"cmd": "power_on", "unit": unit})


@sim.command()
@UNIT
@click.option(
    "--in",
    "in_ms",
    type=click.IntRange(0, 3_600_000),
    default=0,
    show_default=True,
    help="Hang this many ms from now.",
)
@control_options
def hang(unit: str, in_ms: int, control: str | None, as_json: bool) -> None:
    """Hang UNIT's firmware (its watchdog should reset it)."""
    run_command(control, as_json, {"cmd": "hang", "unit": unit, "in_ms": in_ms})


@sim.command("radio-loss")
@UNIT
@click.argument("probability", metavar="P", type=click.FloatRange(0.0, 1.0))
@control_options
def radio_loss(unit: str, probability: float, control: str | None, as_json: bool) -> None:
    """Lose each radio packet to or from UNIT with probability P (0 to 1)."""
    run_command(control, as_json, {"cmd": "radio_loss", "unit": unit, "p": probability})


@sim.command("time-jump")
@UNIT
@click.argument("ms", metavar="MS", type=click.IntRange(1, 10 * 365 * 86_400_000))
@control_options
def time_jump(unit: str, ms: int, control: str | None, as_json: bool) -> None:
    """Move UNIT's clock MS milliseconds ahead while it sleeps."""
    run_command(control, as_json, {"cmd": "time_jump", "unit": unit, "ms": ms})


@sim.command()
@click.argument("unit", metavar="[UNIT]", required=False)
@control_options
def status(unit: str | None, control: str | None, as_json: bool) -> None:
    """Each unit's clock, boots, cell and charge drawn (or only UNIT's)."""
    command: dict[str, Any] = {"cmd": "status"}
    if unit is not None:
        command["unit"] = unit
    run_command(control, as_json, command)
