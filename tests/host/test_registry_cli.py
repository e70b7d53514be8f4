"""`amr units` and `amr audit` run as a user runs them (the installed `amr`
in a subprocess), on SQLite and on a real PostgreSQL server: the audit chain
tampered with in each way is named by `amr audit verify`, and bad input of
every kind is a message and its exit code, never a traceback."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from sqlalchemy import create_engine, text

from amrkit.cli.common import EXIT_KEYS, EXIT_REGISTRY

AMR = str(Path(sys.executable).parent / "amr")
UNIT = "00112233aabbccdd"
OTHER = "8899aabbccddeeff"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def store(url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a store whose registry at `url` has two units (one
    retired), made through the API so each test starts fast."""
    from amrkit.registry import MasterKey, Registry, State

    key = MasterKey.generate()
    key.write_file(tmp_path / "master.key")
    with Registry.open(url, key, create=True) as registry:
        for unit, mac in ((UNIT, "aa:bb:cc:dd:ee:01"), (OTHER, "aa:bb:cc:dd:ee:02")):
            with registry.step("store-clerk", "add", unit) as tx:
                tx.add_unit("esp32c3-coin", "esp32c3", mac)
        with registry.step("store-clerk", "retire", OTHER) as tx:
            tx.transition(State.RETIRED)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMR_")}
    return {
        **base,
        "AMR_REGISTRY": url,
        "AMR_ACTOR": "store-clerk",
        "AMR_MASTER_KEY_FILE": str(tmp_path / "master.key"),
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return store(f"sqlite:///{tmp_path / 'registry.sqlite'}", tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return store(server.new_database(), tmp_path)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return store(f"sqlite:///{tmp_path / 'registry.sqlite'}", tmp_path)


def test_init_add_and_the_master_key_file(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMR_")}
    env = {**base, "AMR_REGISTRY": str(tmp_path / "store.sqlite"), "AMR_ACTOR": "tech"}
    key = tmp_path / "master.key"
    done = amr(env, "units", "init", "--master-key-file", str(key))
    assert "new master key written" in done.stdout and "initialised" in done.stdout
    assert key.stat().st_mode & 0o777 == 0o600
    env["AMR_MASTER_KEY_FILE"] = str(key)
    assert "already initialised" in amr(env, "units", "init").stdout
    amr(env, "units", "add", UNIT, "--board", "esp32c3-coin", "--mac", "AABBCCDDEE01")
    assert (
        "already in the registry"
        in amr(
            env, "units", "add", UNIT, "--board", "b", "--mac", "aa:bb:cc:dd:ee:01", code=8
        ).stderr
    )


def amr(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [AMR, *args], env=env, capture_output=True, text=True, timeout=60, cwd=env.get("CWD")
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def sql(env: dict[str, str], *statements: str) -> None:
    engine = create_engine(env["AMR_REGISTRY"])
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def test_list_show_and_export(env: dict[str, str], tmp_path: Path) -> None:
    table = amr(env, "units", "list").stdout.splitlines()
    assert table[0].split() == ["UNIT", "STATE", "BOARD", "CHIP", "MAC", "KEYS", "APP", "CASE",
                                "UPDATED"]  # fmt: skip
    assert [line.split()[:2] for line in table[1:]] == [[UNIT, "stock"], [OTHER, "retired"]]
    listed = json.loads(amr(env, "units", "list", "--state", "retired", "--json").stdout)
    assert [u["unit_id"] for u in listed] == [OTHER]
    shown = amr(env, "units", "show", UNIT).stdout
    assert "state  stock" in shown and "store-clerk" in shown and "{" not in shown
    out = tmp_path / "units.csv"
    assert "2 units written" in amr(env, "units", "export", "--out", str(out)).stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["unit_id"] for r in rows] == [UNIT, OTHER]


def test_refused_issue_is_exit_8_and_names_the_states(env: dict[str, str]) -> None:
    done = amr(env, "units", "issue", UNIT, "--case", "AZ-2026-1", code=EXIT_REGISTRY)
    assert "is stock, asked issued" in done.stderr and "check the unit first" in done.stderr
    done = amr(env, "units", "issue", UNIT, "--case", "anna@example.org", code=2)
    assert "e-mail" in done.stderr
    assert json.loads(amr(env, "units", "show", UNIT, "--json").stdout)["state"] == "stock"
    entries = json.loads(amr(env, "audit", "list", "--unit", UNIT, "--json").stdout)
    assert entries[-1]["action"] == "issue refused" and entries[-1]["actor"] == "store-clerk"


def test_an_intact_chain_verifies(env: dict[str, str]) -> None:
    assert "audit log intact: 4 entries" in amr(env, "audit", "verify").stdout
    listing = amr(env, "audit", "list").stdout
    assert "stock -> retired" in listing and "'" not in listing


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (["UPDATE audit_log SET actor = 'nobody' WHERE seq = 2"], "entry 2 (add"),
        (["DELETE FROM audit_log WHERE seq = 2"], "before entry 3 (add) was deleted"),
        (["DELETE FROM audit_log WHERE seq = 4"], "the last entry was deleted"),
        (
            [
                "UPDATE audit_log SET seq = 99 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 99",
            ],
            "out of order",
        ),
        (["DELETE FROM registry_meta WHERE name = 'audit_head'"], "chain head is missing"),
    ],
    ids=["edited", "deleted", "deleted-last", "reordered", "head-deleted"],
)
def test_a_tampered_chain_is_named_by_verify(
    env: dict[str, str], tamper: list[str], expected: str
) -> None:
    sql(env, *tamper)
    done = amr(env, "audit", "verify", code=EXIT_REGISTRY)
    assert expected in done.stderr, done.stderr
    assert "NOT intact" in done.stderr


def test_bad_input_is_a_message_and_an_exit_code(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    env = sqlite_env
    cases = [
        (["units", "list", "--registry", "mysql://x@localhost/db"], EXIT_REGISTRY, "scheme"),
        (["units", "list", "--registry", "ftp://nowhere"], EXIT_REGISTRY, "scheme"),
        (["units", "list", "--registry", str(tmp_path)], EXIT_REGISTRY, "is a directory"),
        (
            ["units", "list", "--registry", "postgresql+psycopg://u@127.0.0.1:1/none"],
            EXIT_REGISTRY,
            "cannot use the registry",
        ),
        (["units", "list", "--registry", str(tmp_path / "nope.sqlite")], EXIT_REGISTRY, "init"),
        (["units", "show", "0000000000000000"], EXIT_REGISTRY, "not in the registry"),
        (["units", "show", "xyz"], EXIT_REGISTRY, "16 hex digits"),
        (["units", "list", "--state", "lost"], 2, "unknown state"),
    ]
    for args, code, message in cases:
        assert message in amr(env, *args, code=code).stderr, args
    no_key = {k: v for k, v in env.items() if k != "AMR_MASTER_KEY_FILE"}
    no_key["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    assert "no master key" in amr(no_key, "units", "list", code=EXIT_KEYS).stderr
    wrong = {**no_key, "AMR_MASTER_KEY": "11" * 32}
    assert "wrong master key" in amr(wrong, "units", "list", code=EXIT_KEYS).stderr
