"""`amr bundle export`: the keys of units for one receiver, from the registry."""

from __future__ import annotations

from pathlib import Path

import click

from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_KEYS,
    actor_name,
    fail,
    json_line,
    open_registry,
    passphrase,
    registry_errors,
    registry_options,
)


@click.group()
def bundle() -> None:
    """Receiver bundles: the keys a phone or home gateway needs, encrypted."""


@bundle.command()
@registry_options
@click.option("--unit", "unit_ids", multiple=True, required=True, help="Unit id (repeatable).")
@click.option(
    "--receiver",
    required=True,
    help="The receiver's code (like a case reference: never its owner's name). A unit's "
    "keys go to one receiver: another needs new keys first (amr provision).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option(
    "--passphrase-env",
    default="AMR_BUNDLE_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the bundle passphrase (else it is asked for).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    unit_ids: tuple[str, ...],
    receiver: str,
    out: Path,
    passphrase_env: str,
    as_json: bool,
) -> None:
    """Write the receiver bundle of these units (and a QR code of it when it
    fits one, as OUT.qr.png)."""
    from amrkit.bundle import BundleError
    from amrkit.workflows.bundles import export_bundle

    who = actor_name(actor)
    secret = passphrase(passphrase_env)
    if not out.parent.is_dir():
        raise click.BadParameter(f"no folder {out.parent}", param_hint="--out")
    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        try:
            done = export_bundle(registry, who, list(unit_ids), receiver, out, secret)
        except BundleError as err:
            fail(str(err), EXIT_KEYS)
        except OSError as err:
            fail(f"cannot write {out}: {err.strerror or err}", EXIT_INPUT)
    result = {
        "bundle": str(done.path),
        "units": ", ".join(done.units),
        "receiver": receiver,
        "qr": str(done.qr) if done.qr else "too large for one QR code: give the file",
    }
    if as_json:
        click.echo(json_line({**result, "units": done.units}))
    else:
        for key, value in result.items():
            click.echo(f"{key:>8}  {value}")
