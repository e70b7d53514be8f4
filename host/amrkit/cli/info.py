"""`amr info`: a unit's readout over its wired link or BLE."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from amrkit.cli.common import (
    EXIT_KEYS,
    EXIT_RADIO,
    EXIT_UNFIT,
    EXIT_UNIT,
    bundle_units,
    echo_fields,
    fail,
    unit_id_option,
)


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
@click.option(
    "--unit",
    "unit_id",
    callback=lambda _ctx, _param, value: unit_id_option(value),
    help="BLE: only this unit id (16 hex digits) [any unit of the bundle].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="BLE: seconds to find the unit.",
)
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
    (--transport, --bundle), and judge it: a verdict, ok or each reason it is
    not fit for use with the next step (exit 7 when not ok)."""
    from amrkit.unit import Link, RadioUnavailable, Unit, UnitError, readout
    from amrkit.unit.verdict import judge, verdict_fields

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
    except RadioUnavailable as err:
        fail(str(err), EXIT_RADIO)
    except UnitError as err:
        fail(str(err), EXIT_UNIT)
    except (OSError, ValueError) as err:
        if transport is None:
            fail(f"{port}: {err}; check the cable and the port name", EXIT_UNIT)
        fail(f"cannot open the BLE transport {transport}: {err}", EXIT_RADIO)
    reasons = judge(report)
    if as_json:
        click.echo(json.dumps({**report, "verdict": verdict_fields(reasons)}))
    else:
        echo_fields(dict(sorted(report.items())), nest=True)
        click.echo()
        if not reasons:
            click.echo("verdict: ok")
        else:
            click.echo("verdict: not fit for use")
            for reason in reasons:
                click.echo(f"  {reason}")
    if reasons:
        raise SystemExit(EXIT_UNFIT)
