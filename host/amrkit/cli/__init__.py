"""The `amr` command line: one module a verb (or a group of them); each
parses, calls a workflow and prints. What they share is in common.py."""

from __future__ import annotations

import click

from amrkit.cli.audit import audit_log
from amrkit.cli.bundle import bundle
from amrkit.cli.check import check
from amrkit.cli.common import (
    EXIT_BUILD,
    EXIT_INPUT,
    EXIT_KEYS,
    EXIT_RADIO,
    EXIT_UNFIT,
    EXIT_UNIT,
    exit_code_help,
)
from amrkit.cli.demo import demo
from amrkit.cli.firmware import build_app
from amrkit.cli.flash import flash
from amrkit.cli.images import images
from amrkit.cli.info import info
from amrkit.cli.listen import listen
from amrkit.cli.pair import pair
from amrkit.cli.power import power
from amrkit.cli.provision import provision, wipe
from amrkit.cli.sim import sim
from amrkit.cli.units import units

__all__ = [
    "EXIT_BUILD",
    "EXIT_INPUT",
    "EXIT_KEYS",
    "EXIT_RADIO",
    "EXIT_UNFIT",
    "EXIT_UNIT",
    "main",
]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=exit_code_help(),
)
@click.version_option(package_name="amrkit")
def main() -> None:
    """Tooling for the AMR discreet panic button: firmware, twin, receiver."""


for command in (
    demo,
    listen,
    build_app,
    sim,
    info,
    flash,
    images,
    provision,
    check,
    wipe,
    pair,
    bundle,
    units,
    audit_log,
    power,
):
    main.add_command(command)
