"""What every `amr` command shares: exit codes, failing with a message,
secrets asked for without echo, board profiles and key bundles read with
errors that say what to do, and values printed as a person reads them."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from amrkit.boards import DEPLOYMENTS, Board, load_profile

if TYPE_CHECKING:
    from amrkit.protocol import KnownUnit
    from amrkit.registry import Registry

# Exit codes, for scripts; 2 is click's usage error (a bad board profile too).
EXIT_BUILD = 1  # a firmware file that does not compile
EXIT_KEYS = 3  # bundle or secret missing, unreadable, damaged, or wrong passphrase
EXIT_RADIO = 4  # no usable Bluetooth adapter
EXIT_INPUT = 5  # an input file that cannot be read, or an image that does not fit the unit
EXIT_UNIT = 6  # a unit that cannot be reached, or does not answer, over its link
EXIT_UNFIT = 7  # a unit that failed a check or is not fit for use (the reason is printed)
EXIT_REGISTRY = 8  # the registry refused: an illegal step, an unknown unit, a broken audit chain
# amr listen stopped from outside: 128 + the signal's number, as shells
# report it; its state is saved first.
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_PIPE = 141  # the output's reader went away (SIGPIPE: `amr listen | head -1`)
EXIT_TERMINATED = 143  # SIGTERM (kill, systemctl stop)

EXIT_CODES = {
    0: "success",
    EXIT_BUILD: "a firmware file does not compile",
    2: "usage: a bad option, argument or board profile",
    EXIT_KEYS: "a bundle or secret is missing, unreadable, damaged or has the wrong passphrase",
    EXIT_RADIO: "no usable Bluetooth adapter or transport",
    EXIT_INPUT: "an input file cannot be read (or an output written), or an image does not fit"
    " the unit",
    EXIT_UNIT: "a unit cannot be reached, or does not answer, over its link",
    EXIT_UNFIT: "a unit failed a check or is not fit for use; the reason and next step are printed",
    EXIT_REGISTRY: "the registry refused: an illegal step, an unknown unit, a broken audit chain",
    EXIT_INTERRUPTED: "amr listen stopped by Ctrl-C (SIGINT), its state saved",
    EXIT_PIPE: "amr listen: the program reading its output went away (SIGPIPE)",
    EXIT_TERMINATED: "amr listen stopped by SIGTERM, its state saved",
}


def exit_code_help() -> str:
    """The exit codes as `amr --help` lists them."""
    return "\b\nExit codes:\n" + "\n".join(f"  {n:>3}  {text}" for n, text in EXIT_CODES.items())


def json_line(value: Any) -> str:
    """`value` as one line of strict JSON (RFC 8259): a number that is NaN or
    infinite, which JSON cannot carry, becomes null."""

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), allow_nan=False)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"amr: {message}", err=True)
    raise SystemExit(code)


def passphrase(env: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        fail(f"no passphrase: set ${env} or run interactively", EXIT_KEYS)
    return str(click.prompt("Bundle passphrase", hide_input=True))


def load_board(path: Path, deployment: str | None = None) -> Board:
    """The board a profile describes, running `deployment` (its default if
    None), or a usage error saying what is wrong with it."""
    try:
        board = load_profile(path)
        return board if deployment is None else board.for_deployment(deployment)
    except ValueError as err:
        raise click.UsageError(str(err)) from err


def bundle_units(bundle: Path, passphrase_env: str) -> list[KnownUnit]:
    """The units of a key bundle, or exit: the bundle or its passphrase is wrong."""
    from amrkit.bundle import BundleError, read_bundle

    try:
        return read_bundle(bundle, passphrase(passphrase_env))
    except BundleError as err:
        fail(str(err), EXIT_KEYS)


def text(value: Any) -> str:
    """A value as a person reads it: nested fields as name=value, yes/no, "-" for none."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)


def echo_fields(report: dict[str, Any], *, nest: bool = False, indent: int = 0) -> None:
    """One field a line, names aligned on the right. With nest, a field whose
    value is a table of more than two fields gets its own lines below its name,
    sorted and indented; else it is one line of name=value."""
    width = max((len(k) for k in report), default=0)
    for key, value in report.items():
        if nest and isinstance(value, dict) and len(value) > 2:
            click.echo(f"{' ' * indent}{key:>{width}}")
            echo_fields(dict(sorted(value.items())), nest=True, indent=indent + 2)
        else:
            click.echo(f"{' ' * indent}{key:>{width}}  {text(value)}")


def echo_result(result: dict[str, Any], as_json: bool) -> None:
    """A verb's result: one JSON object for a program, aligned fields for a person."""
    if as_json:
        click.echo(json.dumps(result))
    else:
        echo_fields(result)


def writable_dir(path: Path, option: str) -> Path:
    """`path`, created if needed, or a usage error naming `option`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(
            f"cannot create the folder {path}: {err.strerror}; give a writable folder",
            param_hint=option,
        ) from err
    return path


UNIT_ID_DIGITS = 16  # a unit id: 8 bytes, in hex


def unit_id_option(value: str | None) -> str | None:
    """A unit id as an option gives it (any case), or a usage error saying its form."""
    if value is None:
        return None
    try:
        ok = len(value) == UNIT_ID_DIGITS and bytes.fromhex(value) is not None
    except ValueError:
        ok = False
    if not ok:
        raise click.BadParameter(
            f"{value!r} is not a unit id: give its {UNIT_ID_DIGITS} hex digits, "
            "as `amr info` or the bundle shows them"
        )
    return value.lower()


# --- the unit registry (amr units, amr audit) ---------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(command: F) -> F:
    """--registry, --master-key-file and --actor, on every registry command."""
    command = click.option(
        "--actor",
        help="Who does this, for the audit log [$AMR_ACTOR, else the OS user].",
    )(command)
    command = click.option(
        "--master-key-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="File holding the registry master key [$AMR_MASTER_KEY_FILE, $AMR_MASTER_KEY, "
        "else the OS keyring].",
    )(command)
    command = click.option(
        "--registry",
        "registry_url",
        metavar="URL",
        help="Registry database: sqlite:///PATH, a file path, or postgresql+psycopg://... "
        "[$AMR_REGISTRY, else ~/.local/share/amr/registry.sqlite].",
    )(command)
    return command


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    named = os.environ.get("AMR_ACTOR")
    if named:
        return named
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        fail("no actor: give --actor or set $AMR_ACTOR", 2)


@contextmanager
def registry_errors() -> Iterator[None]:
    """Registry errors as a message and their exit code, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from amrkit.registry import MasterKeyError, RegistryError

    try:
        yield
    except MasterKeyError as err:
        fail(str(err), EXIT_KEYS)
    except RegistryError as err:
        fail(str(err), EXIT_REGISTRY)
    except SQLAlchemyError as err:
        fail(f"registry database error: {str(err).splitlines()[0]}", EXIT_REGISTRY)


def open_registry(url: str | None, master_key_file: Path | None, create: bool = False) -> Registry:
    """The registry, open and migrated, or exit with what is wrong (3 for the key, 8 else)."""
    from amrkit.registry import MasterKey, Registry

    with registry_errors():
        key = MasterKey.resolve(master_key_file)
        return Registry.open(url, key, create=create)
    raise AssertionError("unreachable")


def deployment_option(f: F) -> F:
    """--deployment: which image the units run, for the wake time the twin imposes."""
    return click.option(
        "--deployment",
        type=click.Choice(DEPLOYMENTS),
        help="stock: the app as .mpy files on stock MicroPython; frozen: the production"
        " image with the app frozen in and fast boot [the board profile's default].",
    )(f)
