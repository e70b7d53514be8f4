"""`amr provision` and `amr wipe`: a unit's keys given and taken away, over
its wired link only, recorded in the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from amrkit.cli.common import (
    EXIT_UNFIT,
    EXIT_UNIT,
    actor_name,
    echo_result,
    fail,
    open_registry,
    registry_errors,
    registry_options,
)

T = TypeVar("T")


def resolve_wired_port(port: str | None) -> str:
    """The port named, or the one USB board attached; else exit with why."""
    from amrkit.ports import PortError, resolve_port

    try:
        return resolve_port(port)
    except PortError as err:
        fail(str(err), 2 if err.several else EXIT_UNIT)


def on_wired_unit(port: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(unit)` on the unit at `port`; unit failures end in a message
    and their exit code (7: it cannot prove its keys, 6: it does not answer)."""
    from amrkit.unit import KeyProofError, Unit, UnitError
    from amrkit.unit.wired import WiredLink

    async def run() -> T:
        async with WiredLink(port) as link:
            return await work(Unit(link))

    with registry_errors():
        try:
            return asyncio.run(run())
        except KeyProofError as err:
            fail(f"{err}; nothing was recorded", EXIT_UNFIT)
        except UnitError as err:
            fail(f"{err}; nothing was recorded", EXIT_UNIT)
    raise AssertionError("unreachable")


@click.command()
@registry_options
@click.option("--port", help="Serial port or pyserial URL [the one USB board attached].")
@click.option(
    "--label-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("labels"),
    show_default=True,
    help="Write the unit's label (unit id and QR code, nothing secret) here as PNG.",
)
@click.option("--force", is_flag=True, help="Provision even though alerts are pending on the unit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def provision(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    port: str | None,
    label_dir: Path,
    force: bool,
    as_json: bool,
) -> None:
    """Give a flashed (or wiped) unit new keys and its config over the cable:
    a new key generation, proved by challenge and response (keys are never
    read back), recorded in the registry, and a label written."""
    from amrkit.workflows.provision import provision as run_provision

    who = actor_name(actor)
    where = resolve_wired_port(port)
    with open_registry(registry_url, master_key_file) as registry:
        done = on_wired_unit(
            where,
            lambda unit: run_provision(unit, registry, who, force=force, label_dir=label_dir),
        )
    result = {
        "unit_id": done.unit_id,
        "key_generation": done.generation,
        "board": done.board,
        "mac": done.mac,
        "keys": "proved by challenge",
        "label": str(done.label) if done.label else None,
        "next_step": "amr check",
    }
    echo_result(result, as_json)


@click.command()
@registry_options
@click.option("--port", help="Serial port or pyserial URL [the one USB board attached].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def wipe(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    port: str | None,
    as_json: bool,
) -> None:
    """Erase a returned unit's keys, config and bonds, prove that it can no
    longer answer for its keys, and destroy the registry's copy of them."""
    from amrkit.workflows.wipe import wipe as run_wipe

    who = actor_name(actor)
    where = resolve_wired_port(port)
    with open_registry(registry_url, master_key_file) as registry:
        done = on_wired_unit(where, lambda unit: run_wipe(unit, registry, who))
    result = {
        "unit_id": done.unit_id,
        "wiped": "keys, config and bonds erased; the challenge now fails",
        "key_generation_destroyed": done.generation,
        "next_step": "amr provision (to issue it again) or amr units retire",
    }
    echo_result(result, as_json)
