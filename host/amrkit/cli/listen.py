"""`amr listen`: receive, verify and report alerts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from amrkit.cli.common import EXIT_INPUT, EXIT_RADIO, bundle_units, fail


@click.command()
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Receiver bundle.")
@click.option(
    "--passphrase-env",
    default="AMR_BUNDLE_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the bundle passphrase (else it is asked for).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    default=Path("amr-receiver.sqlite"),
    show_default=True,
    help="SQLite file for high-water marks and reported alerts.",
)
@click.option("--capture", type=click.Path(path_type=Path), help="Replay a capture file.")
@click.option("--adapter", help="BlueZ adapter to scan with (e.g. hci0).")
@click.option(
    "--transport",
    help="Scan through bumble on this HCI transport instead (e.g. usb:0, tcp-client:HOST:PORT).",
)
@click.option(
    "--ack/--no-ack",
    default=False,
    help="Acknowledge verified alerts over the air (needs --transport: bleak cannot advertise).",
)
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--webhook", help="Forward every event to this URL (durable outbox).")
@click.option("--outbox", type=click.Path(path_type=Path), help="Outbox file [STATE.outbox].")
def listen(
    bundle: Path,
    passphrase_env: str,
    state: Path,
    capture: Path | None,
    adapter: str | None,
    transport: str | None,
    ack: bool,
    duration: float | None,
    webhook: str | None,
    outbox: Path | None,
) -> None:
    """Receive, verify and report alerts: one JSON line per event on stdout."""
    from amrkit.listen import ble_source, capture_source, session
    from amrkit.outbox import Outbox
    from amrkit.receiver import Receiver

    receiver = Receiver(bundle_units(bundle, passphrase_env), state)
    forward = None
    if webhook:
        try:
            forward = Outbox(outbox or state.with_suffix(".outbox"), webhook)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--webhook") from err
    if ack and not transport:
        raise click.UsageError("--ack needs --transport: acknowledging means advertising")
    source = capture_source(capture) if capture else ble_source(adapter, transport)

    def emit(event: dict[str, Any]) -> None:
        click.echo(json.dumps(event))

    try:
        asyncio.run(
            session(
                receiver,
                source,
                emit,
                forward,
                ack_transport=transport if ack else None,
                duration_s=duration,
            )
        )
    except KeyboardInterrupt:
        pass
    except ValueError as err:
        fail(str(err), EXIT_INPUT)
    except Exception as err:  # bleak: no adapter, no permission, no BlueZ
        if capture:
            raise
        fail(f"cannot scan for Bluetooth LE ({err}); name an adapter or use --capture", EXIT_RADIO)
    finally:
        receiver.close()
        if forward is not None:
            forward.close()
    click.echo(json.dumps({"stats": dict(receiver.stats)}), err=True)
