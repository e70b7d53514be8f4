"""`amr listen`: receive, verify and report alerts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_RADIO,
    bundle_units,
    fail,
    open_registry,
    registry_errors,
    unit_id_option,
)
from amrkit.receiver import EVENT_KINDS

T = TypeVar("T")


def open_store(opener: Callable[[], T], path: Path, option: str) -> T:
    """A receiver's SQLite file opened, or exit 5 naming the file and the option."""
    try:
        return opener()
    except sqlite3.Error as err:
        what = "a directory" if path.is_dir() else str(err)
        fail(
            f"cannot use {path} as the {option} file ({what}); "
            f"give {option} a writable file path (it is created if missing)",
            EXIT_INPUT,
        )


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
@click.option(
    "--decoys/--no-decoys",
    default=True,
    show_default=True,
    help="With --ack: answer routine frames with decoy acknowledgements too, so an "
    "acknowledgement does not tell an alert from a cover sequence (costs the same "
    "air time per routine sequence as per alert).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds.",
)
@click.option("--webhook", help="Forward every event to this URL (durable outbox).")
@click.option("--outbox", type=click.Path(path_type=Path), help="Outbox file [STATE.outbox].")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    help="text: a sentence per event for a person; json: one JSON object a line "
    "[text on a terminal, else json].",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--names",
    type=click.Path(path_type=Path),
    help='Text output: unit names, a JSON object {"UNIT_ID": "label"} or lines "UNIT_ID LABEL".',
)
@click.option(
    "--registry",
    "registry_url",
    metavar="URL",
    help="Text output: name units from the store's registry (the case an issued unit is "
    "under, else its state); needs the master key as the other registry commands do.",
)
@click.option(
    "--master-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --registry: the registry master key [$AMR_MASTER_KEY_FILE, ...].",
)
@click.option(
    "--unit",
    "units_shown",
    multiple=True,
    callback=lambda _ctx, _param, values: tuple(unit_id_option(v) for v in values),
    help="Show only this unit's events (repeatable); the webhook still gets every event.",
)
@click.option(
    "--event",
    "kinds_shown",
    multiple=True,
    type=click.Choice(EVENT_KINDS),
    help="Show only events of this kind (repeatable); the webhook still gets every event.",
)
def listen(
    bundle: Path,
    passphrase_env: str,
    state: Path,
    capture: Path | None,
    adapter: str | None,
    transport: str | None,
    ack: bool,
    decoys: bool,
    duration: float | None,
    webhook: str | None,
    outbox: Path | None,
    output: str | None,
    as_json: bool,
    names: Path | None,
    registry_url: str | None,
    master_key_file: Path | None,
    units_shown: tuple[str, ...],
    kinds_shown: tuple[str, ...],
) -> None:
    """Receive, verify and report alerts: one line per event on stdout, a
    sentence for a person on a terminal, a JSON object for a program (--format)."""
    from amrkit.ble import transport_trouble
    from amrkit.listen import CaptureError, ble_source, capture_source, session
    from amrkit.listen_text import Names, NamesError, describe, load_names
    from amrkit.outbox import Outbox, check_url
    from amrkit.receiver import Receiver

    if ack and not transport:
        raise click.UsageError("--ack needs --transport: acknowledging means advertising")
    if as_json and output == "text":
        raise click.UsageError("--json and --format text contradict each other")
    json_out = as_json or output == "json" or (output is None and not sys.stdout.isatty())
    table: Names = {}
    if names is not None:
        try:
            table = load_names(names)
        except NamesError as err:
            fail(str(err), EXIT_INPUT)
    if registry_url is not None or master_key_file is not None:
        from amrkit.listen_text import registry_names

        with open_registry(registry_url, master_key_file) as registry, registry_errors():
            table = {**registry_names(registry.list_units()), **table}
    if webhook:
        try:
            check_url(webhook)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--webhook") from err
    units = bundle_units(bundle, passphrase_env)
    receiver = open_store(lambda: Receiver(units, state), state, "--state")
    forward = None
    if webhook:
        path = outbox or state.with_suffix(".outbox")
        try:
            forward = open_store(lambda: Outbox(path, webhook), path, "--outbox")
        except SystemExit:
            receiver.close()
            raise
    source = capture_source(capture) if capture else ble_source(adapter, transport)

    def emit(event: dict[str, Any]) -> None:
        if units_shown and event.get("unit") not in units_shown:
            return
        if kinds_shown and event.get("event") not in kinds_shown:
            return
        click.echo(json.dumps(event) if json_out else describe(event, table))

    try:
        asyncio.run(
            session(
                receiver,
                source,
                emit,
                forward,
                ack_transport=transport if ack else None,
                decoys=decoys,
                duration_s=duration,
            )
        )
    except KeyboardInterrupt:
        pass
    except CaptureError as err:
        fail(str(err), EXIT_INPUT)
    except Exception as err:  # bleak: no adapter, no permission, no BlueZ
        if capture:
            raise
        if transport:  # bumble: a dongle that is not there, or no `amr sim` at that address
            fail(transport_trouble(transport, err), EXIT_RADIO)
        fail(f"cannot scan for Bluetooth LE ({err}); name an adapter or use --capture", EXIT_RADIO)
    finally:
        receiver.close()
        if forward is not None:
            forward.close()
    click.echo(json.dumps({"stats": dict(receiver.stats)}), err=True)
