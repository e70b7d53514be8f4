"""`amr listen`: receive, verify and report alerts.

Every failure a user can cause ends in a message and an exit code
(common.EXIT_CODES): 3 the bundle, 4 the radio, 5 a capture, names, state or
outbox file; Ctrl-C (SIGINT) and SIGTERM stop it at once, its state saved,
with 130 and 143; a reader of its output that went away, with 141."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_RADIO,
    EXIT_TERMINATED,
    bundle_units,
    fail,
    json_line,
    open_registry,
    registry_errors,
    unit_id_option,
)
from amrkit.receiver import EVENT_KINDS

T = TypeVar("T")

STOP_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


def open_store(opener: Callable[[], T], path: Path, option: str) -> T:
    """A receiver's SQLite file opened, or exit 5 naming the file and the option."""

    def refuse(what: str) -> None:
        fail(
            f"cannot use {path} as the {option} file ({what}); give {option} a writable "
            "file path (it is created if missing), or move a damaged file aside",
            EXIT_INPUT,
        )

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:  # a name too long, a file where a folder should be
        refuse(err.strerror or str(err))
    if mode is not None and stat.S_ISDIR(mode):
        refuse("a directory")
    if mode is not None and not stat.S_ISREG(mode):
        # SQLite would wait forever on a FIFO, or fail late on a device.
        refuse("not a regular file")
    if not path.parent.is_dir():
        refuse(f"no folder {path.parent}")
    try:
        return opener()
    except sqlite3.Error as err:
        refuse(str(err))
    raise AssertionError("unreachable")


def store_trouble(err: sqlite3.Error, stores: dict[str, Path]) -> str:
    """What to say when a receiver's SQLite file fails mid-run (read-only,
    full, locked, damaged, another program's database): which one, and what
    to do. Which one: the outbox if the error came from its code."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    option = "--outbox" if any(f.endswith("outbox.py") for f in frames) else "--state"
    path = stores.get(option, stores["--state"])
    return (
        f"the {option} file {path} failed while listening ({err}); give {option} a "
        "writable file of its own (it is created if missing), not one another program uses"
    )


class OutputFailed(Exception):
    """stdout cannot be written: the program reading it (`| head -1`) went
    away (a BrokenPipeError), or the disk it goes to is full."""


async def until_stopped(work: Coroutine[Any, Any, None]) -> int | None:
    """Run `work` until it ends, or until SIGINT or SIGTERM cancels it (its
    cleanup, the state flushed, still runs). The signal that stopped it, or None."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    caught: list[int] = []

    def stop(signum: int) -> None:
        if not caught:
            caught.append(signum)
            task.cancel()

    handled = []
    for signum in STOP_CODES:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # ignored by whoever started us (nohup, a background job): it stays so
        try:
            loop.add_signal_handler(signum, stop, signum)
            handled.append(signum)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread (run in-process by a test), or no Unix signals
    try:
        await task
    except asyncio.CancelledError:
        if not caught:
            raise
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    return caught[0] if caught else None


def close_promptly(outbox: Any) -> None:
    """Close the outbox, unless a POST in flight holds it (a webhook that does
    not answer): then leave it to the exit. Its events are committed; the
    one in flight is sent again next run (the endpoint sees its key twice)."""
    closer = threading.Thread(target=outbox.close, daemon=True)
    closer.start()
    closer.join(timeout=0.5)


class _OneLine(logging.Formatter):
    """The outbox's log, as `amr: message (error)`: never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"amr: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            text += f" ({type(err).__name__}: {err})"
        return text


def quiet_outbox_log() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("amrkit.outbox")
    logger.addHandler(handler)
    logger.propagate = False


def finite_duration(_ctx: Any, _param: Any, value: float | None) -> float | None:
    if value is not None and value != value:  # NaN passes click's range check
        raise click.BadParameter("give a number of seconds")
    return value


@dataclass(frozen=True)
class ListenOptions:
    """What `amr listen` was asked to do: its options, as click parses them."""

    bundle: Path
    passphrase_env: str
    state: Path
    capture: Path | None
    adapter: str | None
    transport: str | None
    ack: bool
    decoys: bool
    duration: float | None
    webhook: str | None
    outbox: Path | None
    output: str | None
    as_json: bool
    names: Path | None
    registry_url: str | None
    master_key_file: Path | None
    units_shown: tuple[str, ...]
    kinds_shown: tuple[str, ...]


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
@click.option(
    "--capture",
    type=click.Path(path_type=Path),
    help='Replay a capture: JSON lines {"t": seconds, "ad": "<hex>", "rssi": dBm}. A FIFO '
    "(mkfifo) or a pipe is followed as lines arrive, until its writer closes it.",
)
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
    callback=finite_duration,
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
def listen(**options: Any) -> None:
    """Receive, verify and report alerts: one line per event on stdout, a
    sentence for a person on a terminal, a JSON object for a program (--format).

    Runs until --duration, the capture's end, or Ctrl-C or SIGTERM, which
    stop it at once with its state saved; events not yet forwarded wait in
    the outbox for the next run.

    \b
    Exit codes: 2 usage; 3 the bundle (missing, damaged, wrong passphrase);
    4 no Bluetooth; 5 a capture, names, state or outbox file that cannot be
    read or used (the file and line are named), or a stdout that cannot be
    written; 130 Ctrl-C (SIGINT); 141 the reader of its output went away;
    143 SIGTERM."""
    try:
        run_listen(ListenOptions(**options))
    except KeyboardInterrupt:  # Ctrl-C before or after listening (reading the bundle, say)
        fail("interrupted", EXIT_INTERRUPTED)


def run_listen(asked: ListenOptions) -> None:
    from amrkit.ble import transport_trouble
    from amrkit.listen_text import Names, NamesError, describe, load_names
    from amrkit.outbox import Outbox, check_url
    from amrkit.receiver import Receiver

    if asked.ack and not asked.transport:
        raise click.UsageError("--ack needs --transport: acknowledging means advertising")
    if asked.as_json and asked.output == "text":
        raise click.UsageError("--json and --format text contradict each other")
    json_out = (
        asked.as_json
        or asked.output == "json"
        or (asked.output is None and not sys.stdout.isatty())
    )
    table: Names = {}
    if asked.names is not None:
        try:
            table = load_names(asked.names)
        except NamesError as err:
            fail(str(err), EXIT_INPUT)
    if asked.registry_url is not None or asked.master_key_file is not None:
        from amrkit.listen_text import registry_names

        with (
            open_registry(asked.registry_url, asked.master_key_file) as registry,
            registry_errors(),
        ):
            table = {**registry_names(registry.list_units()), **table}
    if asked.webhook:
        try:
            check_url(asked.webhook)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--webhook") from err
    units = bundle_units(asked.bundle, asked.passphrase_env)
    stores = {"--state": asked.state}
    receiver = open_store(lambda: Receiver(units, asked.state), asked.state, "--state")
    forward = None
    if webhook := asked.webhook:
        path = stores["--outbox"] = asked.outbox or asked.state.with_suffix(".outbox")
        try:
            forward = open_store(lambda: Outbox(path, webhook), path, "--outbox")
        except SystemExit:
            receiver.close()
            raise
        quiet_outbox_log()
    # Imported once the files are checked: it loads bumble (a second), which
    # a bad bundle or option need not wait for.
    from amrkit.listen import CaptureError, ble_source, capture_source, session

    source = (
        capture_source(asked.capture)
        if asked.capture
        else ble_source(asked.adapter, asked.transport)
    )

    def emit(event: dict[str, Any]) -> None:
        if asked.units_shown and event.get("unit") not in asked.units_shown:
            return
        if asked.kinds_shown and event.get("event") not in asked.kinds_shown:
            return
        try:
            click.echo(json_line(event) if json_out else describe(event, table))
        except OSError as err:
            raise OutputFailed() from err

    stopped_by: int | None = None
    problem: tuple[str, int] | None = None
    try:
        stopped_by = asyncio.run(
            until_stopped(
                session(
                    receiver,
                    source,
                    emit,
                    forward,
                    ack_transport=asked.transport if asked.ack else None,
                    decoys=asked.decoys,
                    duration_s=asked.duration,
                )
            )
        )
    except KeyboardInterrupt:  # a Ctrl-C the loop had not taken over yet
        stopped_by = signal.SIGINT
    except CaptureError as err:
        problem = str(err), EXIT_INPUT
    except sqlite3.Error as err:
        problem = store_trouble(err, stores), EXIT_INPUT
    except OutputFailed as err:
        # Nothing more can be printed: stdout goes nowhere from here on.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        cause = err.__cause__
        if isinstance(cause, BrokenPipeError):
            problem = "", EXIT_PIPE  # as quiet as any program whose reader left
        else:
            why = cause.strerror if isinstance(cause, OSError) else cause
            problem = f"cannot write the events to stdout ({why})", EXIT_INPUT
    except Exception as err:  # bleak: no adapter, no permission, no BlueZ
        if asked.transport:  # bumble: a dongle that is not there, or no `amr sim` at that address
            problem = transport_trouble(asked.transport, err), EXIT_RADIO
        elif asked.capture:
            raise
        else:
            problem = (
                f"cannot scan for Bluetooth LE ({err}); name an adapter or use --capture",
                EXIT_RADIO,
            )
    finally:
        waiting = 0
        try:
            receiver.close()  # flushes the state
        except sqlite3.Error as err:
            problem = problem or (store_trouble(err, stores), EXIT_INPUT)
        try:
            if forward is not None:
                waiting = forward.pending()
                if stopped_by is None:
                    forward.close()
                else:
                    close_promptly(forward)
        except sqlite3.Error as err:
            problem = problem or (store_trouble(err, stores), EXIT_INPUT)
    click.echo(json_line({"stats": dict(receiver.stats)}), err=True)
    if problem is not None:
        if problem[0]:
            fail(problem[0], problem[1])
        raise SystemExit(problem[1])
    if stopped_by is not None:
        saved = f"stopped by {signal.Signals(stopped_by).name}; state saved in {asked.state}"
        if waiting:
            saved += f"; {waiting} event(s) wait in the outbox {stores['--outbox']} to be sent"
        fail(saved, STOP_CODES[signal.Signals(stopped_by)])
