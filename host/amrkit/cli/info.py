"""`amr info`: a unit's readout over its wired link or BLE."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from amrkit.cli.common import EXIT_KEYS, EXIT_RADIO, EXIT_UNIT, bundle_units, echo_fields, fail


@click.command()
@click.option("--port", help="Serial port or pyserial URL (rfc2217://, socket://).")
@click.option(
    "--transport",
    help="Read over BLE instead, through bumble on this HCI transport "
    "(usb:0, tcp-client:HOST:PORT as `amr sim` prints); the unit must be in service mode.",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    help="Key bundle of the units (BLE: finds the unit and derives its pairing passkey).",
)
@click.option(
    "--passphrase-env",
    default="AMR_BUNDLE_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the bundle passphrase (else it is asked for).",
)
@click.option("--unit", "unit_id", help="BLE: only this unit id (hex) [any unit of the bundle].")
@click.option("--timeout", default=30.0, show_default=True, help="BLE: seconds to find the unit.")
@click.option("--json", "as_json", is_flag=True, help="Print the readout as JSON.")
def info(
    port: str | None,
    transport: str | None,
    bundle: Path | None,
    passphrase_env: str,
    unit_id: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Read a unit's battery (also under radio load), health and diagnostics,
    the same over its wired link (--port) and over BLE in service mode
    (--transport, --bundle)."""
    from amrkit.unit import Link, Unit, UnitError, readout

    if (port is None) == (transport is None):
        raise click.UsageError("give either --port (wired) or --transport (BLE)")
    link: Link
    if transport is not None:
        from amrkit.unit.ble import BleLink, select

        if bundle is None:
            raise click.UsageError(
                "--transport needs --bundle: the unit is found and paired by its keys"
            )
        units = select(bundle_units(bundle, passphrase_env), unit_id)
        if not units:
            fail(f"unit {unit_id} is not in {bundle}: check the id or the bundle", EXIT_KEYS)
        link = BleLink(units, transport, timeout)
    else:
        from amrkit.unit.wired import WiredLink

        link = WiredLink(str(port))

    async def read() -> dict[str, Any]:
        async with link:
            return await readout(Unit(link))

    try:
        report = asyncio.run(read())
    except UnitError as err:
        fail(str(err), EXIT_UNIT)
    except (OSError, ValueError) as err:
        if transport is None:
            fail(f"{port}: {err}; check the cable and the port name", EXIT_UNIT)
        fail(f"cannot open the BLE transport {transport}: {err}", EXIT_RADIO)
    if as_json:
        click.echo(json.dumps(report))
        return
    echo_fields(report)
