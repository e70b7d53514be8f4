"""`amr sim`: virtual units that real tools reach."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import load_board


@click.command()
@click.option("--units", default=1, show_default=True, help="How many virtual units.")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="Keep the units' flash and state here, across runs [a temporary folder].",
)
@click.option("--blank", is_flag=True, help="Units with nothing provisioned (a factory-new board).")
@click.option(
    "--speed", default=1000.0, show_default=True, help="Virtual seconds per second of deep sleep."
)
def sim(units: int, board: str, directory: Path | None, blank: bool, speed: float) -> None:
    """Run virtual units until interrupted: one JSON line per unit says how to
    reach it (serial URL, BLE transport, control port); at the end, one line
    per unit with the charge it drew."""
    import signal
    import threading

    from amrkit.twin.sim import Sim, SimError

    profile = load_board(profile_path(board))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        with Sim(units, profile, directory, blank=blank, speed=speed) as fleet:
            for sim_unit in fleet.units.values():
                click.echo(json.dumps(sim_unit.announce()), nl=True)
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                done.wait()
            for status in fleet.command({"cmd": "status"})["units"]:
                click.echo(json.dumps(status))
    except SimError as err:
        raise click.UsageError(str(err)) from err
