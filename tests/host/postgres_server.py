"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, on a
free TCP port on 127.0.0.1 and a unix socket in that folder, stopped with
`pg_ctl stop -m immediate` and removed whatever the tests did.

initdb refuses to run as root, so under root the server runs as the
`postgres` system user (setuid/setgid in the child), its folder chowned to it.
A machine without PostgreSQL fails the test that asks for one, with what to
install: the registry must be tested against a real server.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest

_BIN_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def _tool(name: str) -> str:
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed: the registry tests need a real server "
            "(apt-get install postgresql-15)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """`with PostgresServer() as server: server.new_database() -> URL`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="amr-pg-"))
        self._names = itertools.count(1)
        self._started = False
        self._demote: Callable[[], None] | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)

            def demote() -> None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

            self._demote = demote

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            args,
            cwd=self.folder,
            preexec_fn=self._demote,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        )
        if done.returncode:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr}{done.stdout}\n{tail}")

    def __enter__(self) -> PostgresServer:
        try:
            data = str(self.folder / "data")
            self._run(
                _tool("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
            options = (
                f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            self._started = True
            self._run(
                _tool("pg_ctl"), "-D", data, "-o", options, "-l",
                str(self.folder / "server.log"), "-w", "-t", "60", "start",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            if self._started:
                self._started = False
                subprocess.run(
                    [_tool("pg_ctl"), "-D", str(self.folder / "data"), "stop", "-m", "immediate"],
                    cwd=self.folder,
                    preexec_fn=self._demote,
                    capture_output=True,
                    timeout=60,
                )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"registry_{next(self._names)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
