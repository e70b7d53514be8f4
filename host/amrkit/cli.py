"""The `amr` command line."""

from __future__ import annotations

import json

import click

from amrkit.boards import DEFAULT_BOARD, load_board


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="amrkit")
def main() -> None:
    """Tooling for the AMR discreet panic button: firmware, twin, receiver."""


@main.command()
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option("--json", "as_json", is_flag=True, help="Print only the final diagnostics as JSON.")
def demo(board: str, as_json: bool) -> None:
    """Run the firmware on the MicroPython unix port through a scripted scenario."""
    from amrkit.twin.scenario import run_demo

    try:
        profile = load_board(board)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if as_json:
        click.echo(json.dumps(run_demo(profile, out=lambda _line: None)))
    else:
        run_demo(profile, out=click.echo)
