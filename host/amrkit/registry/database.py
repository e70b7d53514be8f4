"""Where the registry lives and how it is opened: the URL, the engine, and
the schema migrated to the head revision on every open.

The URL is `--registry`, else $AMR_REGISTRY, else the SQLite file
`$XDG_DATA_HOME/amr/registry.sqlite` (~/.local/share/amr/registry.sqlite).
A plain path is taken as a SQLite file. PostgreSQL: postgresql+psycopg://
(postgresql:// means the same here).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from amrkit.registry.errors import RegistryUnavailable

ENV_URL = "AMR_REGISTRY"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SCHEMES = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "amr" / "registry.sqlite"


def resolve_url(url: str | None) -> str:
    """The registry URL to use (module docstring)."""
    chosen = url or os.environ.get(ENV_URL)
    if not chosen:
        return f"sqlite:///{default_path()}"
    if "://" not in chosen and not chosen.startswith("sqlite:"):
        return f"sqlite:///{Path(chosen).expanduser().resolve()}"
    return chosen


def shown(url: str | URL) -> str:
    """The URL as printed: never the password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise RegistryUnavailable(f"{url!r} is not a registry URL: use {_SCHEMES}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and parsed.drivername == "sqlite":
        return parsed
    raise RegistryUnavailable(
        f"unsupported registry URL scheme {parsed.drivername!r}: use {_SCHEMES}"
    )


def _sqlite_file(url: URL, create: bool) -> None:
    """Refuse a SQLite path that is not a usable file before SQLite makes one."""
    name = url.database
    if not name or name == ":memory:":
        raise RegistryUnavailable("an in-memory SQLite registry would be lost: give a file path")
    path = Path(name)
    if path.is_dir():
        raise RegistryUnavailable(f"{path} is a directory: give the registry's file path")
    if path.exists():
        if not stat.S_ISREG(path.stat().st_mode):
            raise RegistryUnavailable(f"{path} is not a regular file")
        return
    if not create:
        raise RegistryUnavailable(
            f"no registry at {path}: create it with `amr units init`, or give the right "
            f"--registry / ${ENV_URL}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        raise RegistryUnavailable(f"cannot create the registry file {path}: {err}") from None


def make_engine(url: str, create: bool = False) -> Engine:
    parsed = _parse(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        _sqlite_file(parsed, create)
        connect_args["timeout"] = 30
    else:
        connect_args["connect_timeout"] = 10
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as err:
        raise RegistryUnavailable(f"cannot use registry URL {shown(parsed)}: {err}") from None
    if parsed.get_backend_name() == "sqlite":
        _serialise_sqlite_writers(engine)
    return engine


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Each SQLite transaction takes the write lock when it begins (BEGIN
    IMMEDIATE), so two steps cannot both extend the audit chain from the same
    head; foreign keys are enforced."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the database to the head revision (a new one from empty)."""
    config = _alembic_config()
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    try:
        current = current_revision(engine)
        if current is not None and current not in known:
            raise RegistryUnavailable(
                f"the registry {shown(engine.url)} is at schema revision {current}, "
                "newer than this amrkit knows: upgrade amrkit"
            )
        if current == head_revision():
            return
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as err:
        raise unavailable(engine, err) from None


def unavailable(engine: Engine, err: SQLAlchemyError) -> RegistryUnavailable:
    """A database error as the message a person can act on."""
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()
    first = reason[0] if reason else type(err).__name__
    return RegistryUnavailable(f"cannot use the registry {shown(engine.url)}: {first}")


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
