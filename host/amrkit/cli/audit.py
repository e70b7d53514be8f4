"""`amr audit`: the registry's hash-chained audit log, listed and verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from amrkit.cli.common import (
    EXIT_REGISTRY,
    fail,
    open_registry,
    registry_errors,
    registry_options,
    text,
)
from amrkit.cli.units import table, when


def describe(detail: dict[str, Any]) -> str:
    """An entry's detail as one line of text: transitions as from -> to."""
    parts: list[str] = []
    for key, value in detail.items():
        if key == "transitions" and isinstance(value, list):
            for move in value:
                extra = {k: v for k, v in move.items() if k not in ("from", "to")}
                parts.append(
                    f"{move.get('from')} -> {move.get('to')}"
                    + (f" ({text(extra)})" if extra else "")
                )
        elif key == "reports" and isinstance(value, list):
            parts += [
                f"report {r.get('id')} {'passed' if r.get('passed') else 'failed'}" for r in value
            ]
        else:
            parts.append(f"{key}={text(value)}")
    return "; ".join(parts)


@click.group(name="audit")
def audit_log() -> None:
    """The registry's audit log: every action, chained under the registry secret."""


@audit_log.command()
@registry_options
def verify(registry_url: str | None, master_key_file: Path | None, actor: str | None) -> None:
    """Check the whole chain: exit 0 if intact, 8 naming each problem if not."""
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        problems = registry.verify_audit()
        count = len(registry.audit())
    if problems:
        for problem in problems:
            click.echo(f"amr: audit: {problem}", err=True)
        fail(
            f"the audit log of {registry.url} is NOT intact ({len(problems)} problems)",
            EXIT_REGISTRY,
        )
    click.echo(f"audit log intact: {count} entries")


@audit_log.command(name="list")
@registry_options
@click.option("--unit", "unit_id", help="Only this unit's entries.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_entries(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_id: str | None,
    as_json: bool,
) -> None:
    """The audit entries, oldest first."""
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        if unit_id is not None:
            registry.get(unit_id)  # an unknown unit is an error, not an empty list
        entries = [e.as_dict() for e in registry.audit(unit_id)]
    if as_json:
        click.echo(json.dumps(entries, indent=1))
        return
    for entry in entries:
        entry["at"] = when(entry["at"])
        entry["detail"] = describe(entry["detail"])
    table(
        entries,
        [
            ("seq", "#"),
            ("at", "AT"),
            ("actor", "BY"),
            ("action", "ACTION"),
            ("unit", "UNIT"),
            ("detail", "DETAIL"),
        ],
    )
