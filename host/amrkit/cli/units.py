"""`amr units`: the unit registry from the store's side: create it, add
units, list and show them, issue, return and retire, export as CSV.
Flashing, provisioning, checking and wiping are their own verbs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_KEYS,
    actor_name,
    echo_fields,
    fail,
    open_registry,
    registry_errors,
    registry_options,
    text,
)


@click.group()
def units() -> None:
    """The unit registry: each unit's state, keys (sealed) and history.

    \b
    Lifecycle: stock -> flashed -> provisioned -> checked -> issued
               -> returned -> wiped -> (flashed | provisioned | retired)
    See docs/registry.md."""


def _case_ref(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from amrkit.registry import validate_case_ref

    try:
        return validate_case_ref(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _state(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    from amrkit.registry import parse_state

    if value is None:
        return None
    try:
        return parse_state(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def when(iso: str) -> str:
    """An ISO time as a person reads it in a table: UTC to the second."""
    return iso[:19].replace("T", " ") + "Z"


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Rows as an aligned plain-text table under a header line."""
    cells = [[text(row.get(key)) for key, _ in columns] for row in rows]
    widths = [
        max([len(title)] + [len(line[i]) for line in cells]) for i, (_, title) in enumerate(columns)
    ]
    header = "  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True))
    click.echo(header.rstrip())
    for line in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@units.command()
@registry_options
@click.option(
    "--keyring",
    "use_keyring",
    is_flag=True,
    help="Make a new master key and keep it in the OS keyring.",
)
def init(
    registry_url: str | None, master_key_file: Path | None, actor: str | None, use_keyring: bool
) -> None:
    """Create the registry (its secret, sealed under the master key) if it
    does not exist yet. With --master-key-file PATH naming no file yet, a new
    master key is written there (0600); keep a copy offline, the registry's
    keys cannot be opened without it."""
    from amrkit.registry import MasterKey, MasterKeyError

    made = ""
    with registry_errors():
        if master_key_file is not None and not master_key_file.exists():
            MasterKey.generate().write_file(master_key_file)
            made = f"new master key written to {master_key_file} (0600): keep a copy offline"
        elif use_keyring:
            try:
                MasterKey.from_keyring()
            except MasterKeyError:
                MasterKey.generate().store_in_keyring()
                made = "new master key stored in the OS keyring"
    registry = open_registry(registry_url, master_key_file, create=True)
    with registry:
        if made:
            click.echo(made)
        state = "initialised" if registry.created else "already initialised; the master key fits"
        click.echo(f"registry {registry.url} {state}")


@units.command()
@registry_options
@click.argument("unit_id", metavar="UNIT")
@click.option("--board", required=True, help="Board profile name, e.g. esp32c3-coin.")
@click.option("--chip", default="esp32c3", show_default=True, help="Chip of the unit.")
@click.option("--mac", required=True, help="The unit's BLE MAC address (aa:bb:cc:dd:ee:ff).")
@click.option("--heartbeat", default=3600, show_default=True, help="Heartbeat period, seconds.")
def add(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_id: str,
    board: str,
    chip: str,
    mac: str,
    heartbeat: int,
) -> None:
    """Add a hand-entered unit, in stock (UNIT: its id, 16 hex digits)."""
    who = actor_name(actor)
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        with registry.step(who, "add", unit_id) as tx:
            record = tx.add_unit(board, chip, mac, heartbeat)
        click.echo(f"unit {record.unit_id} added, in stock")


@units.command(name="list")
@registry_options
@click.option("--state", callback=_state, help="Only units in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_units(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    state: Any,
    as_json: bool,
) -> None:
    """The units, sorted by id."""
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        records = [u.as_dict() for u in registry.list_units(state)]
    if as_json:
        click.echo(json.dumps(records, indent=1))
        return
    for record in records:
        record["updated_at"] = when(record["updated_at"])
    if not records:
        click.echo("no units" + (f" in state {state}" if state else ""))
        return
    table(
        records,
        [
            ("unit_id", "UNIT"),
            ("state", "STATE"),
            ("board", "BOARD"),
            ("chip", "CHIP"),
            ("mac", "MAC"),
            ("generation", "KEYS"),
            ("app_version", "APP"),
            ("case_ref", "CASE"),
            ("updated_at", "UPDATED"),
        ],
    )


@units.command()
@registry_options
@click.argument("unit_id", metavar="UNIT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_id: str,
    as_json: bool,
) -> None:
    """One unit: its record, check reports and history (never its keys)."""
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        record = registry.get(unit_id).as_dict()
        reports = [
            {
                "id": r.id,
                "at": r.created_at,
                "by": r.actor,
                "passed": r.passed,
                "signature": "ok" if r.signature_ok else "BROKEN",
                "generation": r.generation,
            }
            for r in registry.reports(unit_id)
        ]
        history = [e.as_dict() for e in registry.audit(unit_id)]
    if as_json:
        click.echo(json.dumps({**record, "reports": reports, "history": history}, indent=1))
        return
    echo_fields(record)
    click.echo("")
    if reports:
        click.echo("check reports:")
        table(reports, [(k, k.upper()) for k in reports[0]])
    else:
        click.echo("check reports: none")
    click.echo("")
    click.echo("history:")
    for entry in history:
        entry["at"] = when(entry["at"])
    table(history, [("seq", "#"), ("at", "AT"), ("actor", "BY"), ("action", "ACTION")])


def _move(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_id: str,
    action: str,
    to: str,
    case_ref: str | None = None,
) -> None:
    from amrkit.registry import State

    who = actor_name(actor)
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        with registry.step(who, action, unit_id) as tx:
            before = tx.state
            tx.transition(State(to), case_ref=case_ref)
        click.echo(f"unit {tx.unit_id}: {before} -> {to}")


@units.command()
@registry_options
@click.argument("unit_id", metavar="UNIT")
@click.option(
    "--case",
    "case_ref",
    required=True,
    callback=_case_ref,
    help="The police case reference (an opaque code, never personal data).",
)
def issue(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_id: str,
    case_ref: str,
) -> None:
    """Issue a checked unit under a case reference."""
    _move(registry_url, master_key_file, actor, unit_id, "issue", "issued", case_ref)


@units.command(name="return")
@registry_options
@click.argument("unit_id", metavar="UNIT")
def return_unit(
    registry_url: str | None, master_key_file: Path | None, actor: str | None, unit_id: str
) -> None:
    """Take an issued unit back (it must be wiped before it is issued again)."""
    _move(registry_url, master_key_file, actor, unit_id, "return", "returned")


@units.command()
@registry_options
@click.argument("unit_id", metavar="UNIT")
def retire(
    registry_url: str | None, master_key_file: Path | None, actor: str | None, unit_id: str
) -> None:
    """Take a unit out of service for good; its stored keys are destroyed."""
    _move(registry_url, master_key_file, actor, unit_id, "retire", "retired")


@units.command()
@registry_options
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV file to write.",
)
@click.option("--state", callback=_state, help="Only units in this state.")
def export(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    out: Path,
    state: Any,
) -> None:
    """Write the units (records only, no keys) as CSV."""
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        try:
            with out.open("w", newline="") as stream:
                count = registry.export_csv(stream, state)
        except OSError as err:
            fail(f"cannot write {out}: {err.strerror or err}", EXIT_INPUT)
    click.echo(f"{count} units written to {out}")


__all__ = ["EXIT_KEYS", "units"]
