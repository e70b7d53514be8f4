"""What every `amr` command shares: exit codes, failing with a message,
secrets asked for without echo, board profiles and key bundles read with
errors that say what to do, and values printed as a person reads them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from amrkit.boards import Board, load_profile

if TYPE_CHECKING:
    from amrkit.protocol import KnownUnit
    from amrkit.registry import Registry

# Exit codes, for scripts; 2 is click's usage error (a bad board profile too).
EXIT_BUILD = 1  # a firmware file that does not compile
EXIT_KEYS = 3  # bundle or secret missing, unreadable or wrong passphrase
EXIT_RADIO = 4  # no usable Bluetooth adapter
EXIT_INPUT = 5  # an input file that cannot be read, or an image that does not fit the unit
EXIT_UNIT = 6  # a unit that cannot be reached, or does not answer, over its link
EXIT_UNFIT = 7  # a unit that failed a check or is not fit for use (the reason is printed)
EXIT_REGISTRY = 8  # the registry refused: an illegal step, an unknown unit, a broken audit chain

EXIT_CODES = {
    0: "success",
    EXIT_BUILD: "a firmware file does not compile",
    2: "usage: a bad option, argument or board profile",
    EXIT_KEYS: "a bundle or secret is missing, unreadable or has the wrong passphrase",
    EXIT_RADIO: "no usable Bluetooth adapter or transport",
    EXIT_INPUT: "an input file cannot be read, or an image does not fit the unit",
    EXIT_UNIT: "a unit cannot be reached, or does not answer, over its link",
    EXIT_UNFIT: "a unit failed a check or is not fit for use; the reason and next step are printed",
    EXIT_REGISTRY: "the registry refused: an illegal step, an unknown unit, a broken audit chain",
}


def exit_code_help() -> str:
    """The exit codes as `amr --help` lists them."""
    return "\b\nExit codes:\n" + "\n".join(f"  {n:>2}  {text}" for n, text in EXIT_CODES.items())


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


def load_board(path: Path) -> Board:
    """The board a profile describes, or a usage error saying what is wrong with it."""
    try:
        return load_profile(path)
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
    """A value as a person reads it: nested fields as name=value."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items())
    if value is None:
        return "-"
    return str(value)


def echo_fields(report: dict[str, Any]) -> None:
    """One field a line, names aligned on the right."""
    width = max((len(k) for k in report), default=0)
    for key, value in report.items():
        click.echo(f"{key:>{width}}  {text(value)}")


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
