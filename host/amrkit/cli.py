"""The `amr` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from amrkit.boards import DEFAULT_BOARD, Board, load_profile, profile_path
from amrkit.paths import REPO_DIR

if TYPE_CHECKING:
    from amrkit.protocol import KnownUnit


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="amrkit")
def main() -> None:
    """Tooling for the AMR discreet panic button: firmware, twin, receiver."""


@main.command()
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option("--json", "as_json", is_flag=True, help="Print only the final diagnostics as JSON.")
@click.option(
    "--fleet",
    is_flag=True,
    help="Instead: esptool, mpremote, the receiver and the serial readout against 3 virtual units.",
)
def demo(board: str, as_json: bool, fleet: bool) -> None:
    """Run the firmware on the MicroPython unix port through a scripted scenario."""
    from amrkit.demo.fleet import run_fleet_demo
    from amrkit.demo.story import run_demo

    profile = _board(profile_path(board))
    run = run_fleet_demo if fleet else run_demo
    if as_json:
        click.echo(json.dumps(run(profile, out=lambda _line: None)))
    else:
        run(profile, out=click.echo)


# Exit codes, for scripts; 2 is click's usage error (a bad board profile too).
EXIT_BUILD = 1  # a firmware file that does not compile
EXIT_KEYS = 3  # bundle or secret missing, unreadable or wrong passphrase
EXIT_RADIO = 4  # no usable Bluetooth adapter
EXIT_INPUT = 5  # a capture file that cannot be read
EXIT_UNIT = 6  # a unit that cannot be reached, or does not answer, over its link


def _passphrase(env: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        _fail(f"no passphrase: set ${env} or run interactively", EXIT_KEYS)
    return str(click.prompt("Bundle passphrase", hide_input=True))


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"amr: {message}", err=True)
    raise SystemExit(code)


def _board(path: Path) -> Board:
    """The board a profile describes, or a usage error saying what is wrong with it."""
    try:
        return load_profile(path)
    except ValueError as err:
        raise click.UsageError(str(err)) from err


def _units(bundle: Path, passphrase_env: str) -> list[KnownUnit]:
    """The units of a key bundle, or exit: the bundle or its passphrase is wrong."""
    from amrkit.bundle import BundleError, read_bundle

    try:
        return read_bundle(bundle, _passphrase(passphrase_env))
    except BundleError as err:
        _fail(str(err), EXIT_KEYS)


@main.command()
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

    receiver = Receiver(_units(bundle, passphrase_env), state)
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
        _fail(str(err), EXIT_INPUT)
    except Exception as err:  # bleak: no adapter, no permission, no BlueZ
        if capture:
            raise
        _fail(f"cannot scan for Bluetooth LE ({err}); name an adapter or use --capture", EXIT_RADIO)
    finally:
        receiver.close()
        if forward is not None:
            forward.close()
    click.echo(json.dumps({"stats": dict(receiver.stats)}), err=True)


@main.command("build")
@click.option("--board", help="Board profile name (hardware/boards/NAME.toml).")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="Instead: a board profile file, for boards kept elsewhere.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=REPO_DIR / "build",
    help="Build root [the checkout's build/].",
)
@click.option(
    "--write-source",
    is_flag=True,
    help="Also rewrite firmware/amr/board.py (the committed reference board module).",
)
def build_app(board: str | None, profile: Path | None, out: Path, write_source: bool) -> None:
    """Build the firmware bundle for one board: validate its profile, generate
    the board module amr/board.py and compile the app to .mpy in OUT/BOARD/app."""
    from amrkit import build

    if (board is None) == (profile is None):
        raise click.UsageError("give either --board or --profile")
    spec = _board(profile or profile_path(str(board)))
    try:
        app = build.build(spec, out)
    except build.BuildError as err:
        _fail(str(err), EXIT_BUILD)
    if write_source:
        click.echo(f"wrote {build.write_board_module(spec)}")
    count, size = build.bundle_size(app)
    click.echo(f"bundle {app}: {count} files, {size} bytes")


@main.command()
@click.option("--units", default=1, show_default=True, help="How many virtual units.")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="Keep the units' flash and state here, across runs [a temporary folder].",
)
@click.option("--blank", is_flag=True, help="Units with nothing provisioned (a factory-new board).")
@click.option(
    "--speed", default=1000.0, show_default=True, help="Virtual seconds per second of deep sleep."
)
def sim(units: int, board: str, directory: Path | None, blank: bool, speed: float) -> None:
    """Run virtual units until interrupted: one JSON line per unit says how to
    reach it (serial URL, BLE transport, control port); at the end, one line
    per unit with the charge it drew."""
    import signal
    import threading

    from amrkit.twin.sim import Sim, SimError

    profile = _board(profile_path(board))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        with Sim(units, profile, directory, blank=blank, speed=speed) as fleet:
            for sim_unit in fleet.units.values():
                click.echo(json.dumps(sim_unit.announce()), nl=True)
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                done.wait()
            for status in fleet.command({"cmd": "status"})["units"]:
                click.echo(json.dumps(status))
    except SimError as err:
        raise click.UsageError(str(err)) from err


@main.command()
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
        units = select(_units(bundle, passphrase_env), unit_id)
        if not units:
            _fail(f"unit {unit_id} is not in {bundle}: check the id or the bundle", EXIT_KEYS)
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
        _fail(str(err), EXIT_UNIT)
    except (OSError, ValueError) as err:
        if transport is None:
            _fail(f"{port}: {err}; check the cable and the port name", EXIT_UNIT)
        _fail(f"cannot open the BLE transport {transport}: {err}", EXIT_RADIO)
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:>16}  {_text(value)}")


def _text(value: Any) -> str:
    """A readout value as a person reads it: nested fields as name=value."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if value is None:
        return "-"
    return str(value)
