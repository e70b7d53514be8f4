"""`amr demo`: the stories told on virtual units."""

from __future__ import annotations

import json

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import deployment_option, load_board


@click.command()
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@deployment_option
@click.option("--json", "as_json", is_flag=True, help="Print only the final diagnostics as JSON.")
@click.option(
    "--store",
    is_flag=True,
    help="Instead: the store's day on three new virtual units (flash, provision, check, "
    "issue, bundle, an alert, service mode over BLE, return, wipe, audit).",
)
def demo(board: str, deployment: str | None, as_json: bool, store: bool) -> None:
    """Run the firmware on the MicroPython unix port through a scripted scenario."""
    from amrkit.demo.store import run_store_demo
    from amrkit.demo.story import run_demo

    profile = load_board(profile_path(board), deployment)
    run = run_store_demo if store else run_demo
    if as_json:
        click.echo(json.dumps(run(profile, out=lambda _line: None)))
    else:
        run(profile, out=click.echo)
