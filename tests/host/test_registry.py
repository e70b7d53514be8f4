"""The unit registry's API (amrkit.registry), the same suite on SQLite and on
a real PostgreSQL server this file starts (postgres_server.py): migrations,
lifecycle guards, steps that roll back whole, keys sealed at rest, the master
key, signed check reports, the audit chain and the CSV export."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresServer
from sqlalchemy import create_engine, inspect, text

from amrkit.protocol import UnitKeys
from amrkit.registry import (
    MasterKey,
    MasterKeyError,
    Registry,
    RegistryError,
    State,
    TransitionRefused,
    UnknownUnit,
    validate_case_ref,
)
from amrkit.registry.database import current_revision, head_revision, make_engine

UNIT = "00112233aabbccdd"
OTHER = "8899aabbccddeeff"
KEYS = UnitKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
KEYS2 = UnitKeys(b"\xa1" * 16, b"\xb2" * 16, b"\xc3" * 16)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def registry(url: str, master: MasterKey) -> Iterator[Registry]:
    with Registry.open(url, master, create=True) as opened:
        yield opened


def raw_rows(url: str) -> list[tuple[Any, ...]]:
    """Every row of every table, read around the registry."""
    engine = create_engine(url)
    rows: list[tuple[Any, ...]] = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            rows += connection.execute(text(f"SELECT * FROM {table}")).all()
    engine.dispose()
    return rows


def sql(url: str, statement: str, **params: Any) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(statement), params)
    engine.dispose()


def add(registry: Registry, unit: str = UNIT) -> None:
    with registry.step("tech", "add", unit) as tx:
        tx.add_unit("esp32c3-coin", "esp32c3", "aa:bb:cc:dd:ee:01")


def flash(registry: Registry, unit: str = UNIT) -> None:
    with registry.step("tech", "flash", unit) as tx:
        tx.record_app("1.0.0", "sha256:abc")
        tx.transition(State.FLASHED)


def provision(registry: Registry, unit: str = UNIT, keys: UnitKeys = KEYS) -> None:
    with registry.step("tech", "provision", unit) as tx:
        tx.store_keys(tx.next_generation(), keys, heartbeat_s=600)
        tx.transition(State.PROVISIONED)


def check(registry: Registry, unit: str = UNIT, passed: bool = True) -> int:
    with registry.step("store", "check", unit) as tx:
        report = tx.add_report({"passed": passed, "battery_v": 3.01})
        if passed:
            tx.transition(State.CHECKED)
    return report


def ready(registry: Registry, unit: str = UNIT) -> None:
    add(registry, unit)
    flash(registry, unit)
    provision(registry, unit)
    check(registry, unit)


def issue(registry: Registry, unit: str = UNIT, case: str = "AZ-2026-0042") -> None:
    with registry.step("store", "issue", unit) as tx:
        tx.transition(State.ISSUED, case_ref=case)


def refused(registry: Registry, to: State, unit: str = UNIT, **kwargs: Any) -> str:
    before = registry.get(unit)
    with pytest.raises(TransitionRefused) as caught, registry.step("store", "x", unit) as tx:
        tx.transition(to, **kwargs)
    assert registry.get(unit) == before, "a refused step changed the unit"
    return str(caught.value)


# --- migrations --------------------------------------------------------------


def test_an_empty_database_is_migrated_to_head_on_open(url: str, master: MasterKey) -> None:
    engine = make_engine(url, create=True)
    assert current_revision(engine) is None
    engine.dispose()
    Registry.open(url, master, create=True).close()
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"units", "unit_keys", "check_reports", "audit_log", "registry_meta"} <= tables


def test_an_older_schema_is_upgraded_and_the_registry_kept(url: str, master: MasterKey) -> None:
    with Registry.open(url, master, create=True) as registry:
        add(registry)
    sql(url, "UPDATE alembic_version SET version_num = :v", v="0000-unknown")
    with pytest.raises(RegistryError, match="newer than this amrkit"):
        Registry.open(url, master)
    sql(url, "DELETE FROM alembic_version")  # as before the first migration was recorded
    sql(url, "DROP TABLE alembic_version")
    for table in ("audit_log", "check_reports", "unit_keys", "units", "registry_meta"):
        sql(url, f"DROP TABLE {table}")
    with Registry.open(url, master, create=True) as registry:
        assert registry.created and registry.list_units() == []
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_an_uninitialised_registry_is_refused_without_create(url: str, master: MasterKey) -> None:
    if url.startswith("sqlite"):
        with pytest.raises(RegistryError, match="amr units init"):
            Registry.open(url, master)
        assert not Path(url.removeprefix("sqlite:///")).exists()
    else:
        with pytest.raises(RegistryError, match="not initialised"):
            Registry.open(url, master)


# --- lifecycle ---------------------------------------------------------------


def test_the_whole_lifecycle_and_a_second_issue(registry: Registry) -> None:
    ready(registry)
    issue(registry)
    unit = registry.get(UNIT)
    assert (unit.state, unit.case_ref, unit.generation) == (State.ISSUED, "AZ-2026-0042", 1)
    for action, to, detail in (
        ("return", State.RETURNED, None),
        ("wipe", State.WIPED, {"verified": True}),
    ):
        with registry.step("store", action, UNIT) as tx:
            tx.transition(to, detail)
    unit = registry.get(UNIT)
    assert unit.case_ref is None and not unit.has_keys
    provision(registry, keys=KEYS2)
    check(registry)
    issue(registry, case="AZ-2026-0077")
    assert registry.get(UNIT).generation == 2
    assert registry.keys(UNIT).keys == KEYS2
    actions = [e.action for e in registry.audit(UNIT)]
    assert actions == [
        "add", "flash", "provision", "check", "issue", "return", "wipe", "provision", "check",
        "issue",
    ]  # fmt: skip


def test_illegal_transitions_are_refused_and_change_nothing(registry: Registry) -> None:
    add(registry)
    message = refused(registry, State.ISSUED, case_ref="AZ-1")
    assert "is stock" in message and "asked issued" in message and "check the unit" in message
    flash(registry)
    with (
        pytest.raises(TransitionRefused, match="store the unit's new keys"),
        registry.step("tech", "provision", UNIT) as tx,
    ):
        tx.transition(State.PROVISIONED)
    provision(registry)
    assert "no passing check report" in refused(registry, State.CHECKED)
    check(registry, passed=False)
    assert "no passing check report" in refused(registry, State.CHECKED)
    check(registry)
    assert "case reference" in refused(registry, State.ISSUED)
    assert "phone number" in refused(registry, State.ISSUED, case_ref="AZ-017012345678")
    issue(registry)
    assert "return an issued unit first" in refused(registry, State.RETIRED)
    with registry.step("store", "return", UNIT) as tx:
        tx.transition(State.RETURNED)
    assert "is returned, asked issued" in refused(registry, State.ISSUED, case_ref="AZ-2")
    assert "wipe it" in refused(registry, State.PROVISIONED)
    assert "verified" in refused(registry, State.WIPED)
    refusals = [e for e in registry.audit(UNIT) if e.action.endswith("refused")]
    assert len(refusals) == 10 and all("reason" in e.detail for e in refusals)


def test_reprovisioning_needs_a_new_check(registry: Registry) -> None:
    ready(registry)
    provision(registry, keys=KEYS2)
    assert registry.get(UNIT).state is State.PROVISIONED
    assert "no passing check report since it was last provisioned" in refused(
        registry, State.CHECKED
    )


def test_retire_from_stock_destroys_nothing_and_is_final(registry: Registry) -> None:
    add(registry)
    with registry.step("store", "retire", UNIT) as tx:
        tx.transition(State.RETIRED)
    assert "stays retired" in refused(registry, State.FLASHED)


def test_unknown_and_duplicate_units(registry: Registry) -> None:
    with pytest.raises(UnknownUnit, match="not in the registry"):
        registry.get(OTHER)
    with pytest.raises(UnknownUnit), registry.step("x", "flash", OTHER) as tx:
        tx.transition(State.FLASHED)
    add(registry)
    with pytest.raises(RegistryError, match="already in the registry"):
        add(registry)
    with pytest.raises(RegistryError, match="16 hex digits"):
        registry.get("not-a-unit")


# --- one step, one transaction -------------------------------------------------


def test_a_step_that_raises_leaves_the_registry_as_it_was(registry: Registry) -> None:
    add(registry)
    flash(registry)
    before_unit, before_audit = registry.get(UNIT), registry.audit()
    with (
        pytest.raises(OSError, match="unit stopped answering"),
        registry.step("tech", "provision", UNIT) as tx,
    ):
        tx.store_keys(tx.next_generation(), KEYS)
        tx.transition(State.PROVISIONED)
        tx.add_report({"passed": True})
        raise OSError("unit stopped answering")
    assert registry.get(UNIT) == before_unit
    assert registry.audit() == before_audit
    assert registry.reports(UNIT) == []
    with pytest.raises(RegistryError, match="no keys"):
        registry.keys(UNIT)
    assert registry.verify_audit() == []


def test_list_filters_and_sorts(registry: Registry) -> None:
    add(registry, OTHER)
    add(registry, UNIT)
    flash(registry, OTHER)
    assert [u.unit_id for u in registry.list_units()] == [UNIT, OTHER]
    assert [u.unit_id for u in registry.list_units(State.FLASHED)] == [OTHER]


# --- keys ----------------------------------------------------------------------


def test_keys_round_trip_sealed_and_never_in_the_database(url: str, registry: Registry) -> None:
    ready(registry)
    known = registry.keys(UNIT)
    assert (known.unit, known.keys, known.heartbeat_s) == (UNIT, KEYS, 600)
    assert registry.next_generation(UNIT) == 2
    secrets = [KEYS.enc, KEYS.id, KEYS.ack]
    dump = repr(raw_rows(url)).encode()
    for secret in secrets:
        assert secret not in dump and secret.hex().encode() not in dump
    blobs = b"".join(
        bytes(v) for row in raw_rows(url) for v in row if isinstance(v, bytes | memoryview)
    )
    assert blobs and not any(secret in blobs for secret in secrets)
    if url.startswith("sqlite"):
        raw = Path(url.removeprefix("sqlite:///")).read_bytes()
        assert not any(s in raw or s.hex().encode() in raw for s in secrets)
    for shown in (repr(known), repr(registry), str(registry.get(UNIT)), repr(registry.audit())):
        assert KEYS.enc.hex() not in shown and "0001020304" not in shown


def test_sealed_keys_are_bound_to_their_unit(url: str, registry: Registry) -> None:
    ready(registry, UNIT)
    ready(registry, OTHER)
    sql(
        url,
        "UPDATE unit_keys SET sealed = (SELECT sealed FROM unit_keys WHERE unit_id = :b) "
        "WHERE unit_id = :a",
        a=UNIT,
        b=OTHER,
    )
    with pytest.raises(RegistryError, match="altered or moved"):
        registry.keys(UNIT)
    assert registry.keys(OTHER).keys == KEYS


def test_key_generations_only_go_up(registry: Registry) -> None:
    add(registry)
    flash(registry)
    for stale in (0, -1):
        with (
            pytest.raises(RegistryError, match="never reused, the next one is 1"),
            registry.step("tech", "provision", UNIT) as tx,
        ):
            tx.store_keys(stale, KEYS)
    # A generation the unit took in a step that failed afterwards is skipped.
    with registry.step("tech", "provision", UNIT) as tx:
        tx.store_keys(3, KEYS)
        tx.transition(State.PROVISIONED)
    assert registry.next_generation(UNIT) == 4
    with (
        pytest.raises(RegistryError, match="never reused, the next one is 4"),
        registry.step("tech", "provision", UNIT) as tx,
    ):
        tx.store_keys(3, KEYS)


def test_a_wrong_master_key_is_refused(url: str, registry: Registry) -> None:
    ready(registry)
    registry.close()
    with pytest.raises(MasterKeyError, match="wrong master key"):
        Registry.open(url, MasterKey.generate())


# --- check reports -------------------------------------------------------------


def test_check_reports_are_signed(url: str, registry: Registry) -> None:
    add(registry)
    flash(registry)
    provision(registry)
    report = check(registry, passed=False)
    assert registry.verify_report(report)
    sql(url, "UPDATE check_reports SET passed = :t WHERE id = :i", t=True, i=report)
    assert not registry.verify_report(report)
    assert "fails its signature" in refused(registry, State.CHECKED)
    assert [r.signature_ok for r in registry.reports(UNIT)] == [False]


def test_secrets_are_kept_out_of_reports_and_audit(registry: Registry) -> None:
    add(registry)
    with pytest.raises(TypeError), registry.step("tech", "check", UNIT) as tx:
        tx.add_report({"passed": True, "keys": {"enc": "00"}})
    with pytest.raises(TypeError), registry.step("tech", "note", UNIT) as tx:
        tx.note(raw=b"\x00")


# --- audit chain (API; the CLI's verify is tested in test_registry_cli.py) ------


def test_the_audit_chain_names_what_was_done_to_it(url: str, registry: Registry) -> None:
    ready(registry)
    assert registry.verify_audit() == []
    sql(url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    problems = registry.verify_audit()
    assert len(problems) == 1 and "entry 3" in problems[0] and "edited" in problems[0]


# --- export --------------------------------------------------------------------


def test_csv_export_has_the_units_and_no_keys(registry: Registry) -> None:
    ready(registry)
    add(registry, OTHER)
    out = io.StringIO()
    assert registry.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["unit_id"], r["state"]) for r in rows] == [(UNIT, "checked"), (OTHER, "stock")]
    assert rows[0]["generation"] == "1" and rows[0]["has_keys"] == "True"
    assert KEYS.enc.hex() not in out.getvalue()


# --- master key and case references (no database) -----------------------------


def test_master_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = MasterKey.generate()
    path = tmp_path / "master.key"
    key.write_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(MasterKeyError, match="never overwritten"):
        key.write_file(path)
    assert MasterKey.resolve(path).secret == key.secret
    assert key.secret.hex() not in repr(key) + str(key)
    monkeypatch.setenv("AMR_MASTER_KEY_FILE", str(path))
    assert MasterKey.resolve().secret == key.secret
    monkeypatch.delenv("AMR_MASTER_KEY_FILE")
    import base64

    monkeypatch.setenv("AMR_MASTER_KEY", base64.b64encode(key.secret).decode())
    assert MasterKey.resolve().secret == key.secret
    monkeypatch.setenv("AMR_MASTER_KEY", "abcd")
    with pytest.raises(MasterKeyError, match="not 32"):
        MasterKey.resolve()
    os.chmod(path, 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        MasterKey.resolve(path)


def test_no_keyring_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends.fail import Keyring as NoKeyring

    monkeypatch.delenv("AMR_MASTER_KEY", raising=False)
    monkeypatch.delenv("AMR_MASTER_KEY_FILE", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        with pytest.raises(MasterKeyError, match="no OS keyring backend"):
            MasterKey.resolve()
    finally:
        keyring.set_keyring(previous)


@pytest.mark.parametrize("good", ["AZ-2026-0042", "K17/123.4", "b2026x"])
def test_case_references_that_pass(good: str) -> None:
    assert validate_case_ref(good) == good


@pytest.mark.parametrize(
    "bad",
    ["anna@example.org", "+4917012345678", "017012345678", "Anna Schmidt", "AZ", "abcdef", "1234"],
)
def test_case_references_that_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"case reference|phone|e-mail"):
        validate_case_ref(bad)


# --- receivers, several units in one step, and schema upgrades ------------------


def test_keys_go_to_one_receiver_until_they_are_rotated(registry: Registry) -> None:
    add(registry)
    flash(registry)
    provision(registry)
    with registry.step("store", "bundle export", UNIT) as tx:
        tx.record_export("RX-A1")
    with registry.step("store", "bundle export", UNIT) as tx:
        tx.record_export("RX-A1")  # the same receiver again (a lost file)
    with (
        pytest.raises(TransitionRefused, match="rotate its keys first"),
        registry.step("store", "bundle export", UNIT) as tx,
    ):
        tx.record_export("RX-B2")
    assert registry.get(UNIT).receiver == "RX-A1"
    with pytest.raises(RegistryError, match="receiver"), registry.step("s", "x", UNIT) as tx:
        tx.record_export("Jane Doe")  # a person's name is not a receiver code
    provision(registry, keys=KEYS2)  # new keys: no receiver holds them yet
    assert registry.get(UNIT).receiver is None
    with registry.step("store", "bundle export", UNIT) as tx:
        tx.record_export("RX-B2")
    assert registry.get(UNIT).receiver == "RX-B2"


def test_a_step_on_several_units_commits_all_or_none(registry: Registry) -> None:
    for unit in (UNIT, OTHER):
        add(registry, unit)
        flash(registry, unit)
        provision(registry, unit)
    with registry.step("store", "bundle export", OTHER) as tx:
        tx.record_export("RX-A1")
    before = len(registry.audit())
    with (
        pytest.raises(TransitionRefused),
        registry.steps("store", "bundle export", [UNIT, OTHER]) as txs,
    ):
        for tx in txs:
            tx.record_export("RX-C3")  # OTHER's keys went to RX-A1: refused
    assert registry.get(UNIT).receiver is None  # UNIT's export rolled back with it
    assert [e.action for e in registry.audit()[before:]] == ["bundle export refused"]
    with registry.steps("store", "bundle export", [UNIT]) as txs:
        txs[0].record_export("RX-C3")
    assert registry.get(UNIT).receiver == "RX-C3"
    assert registry.verify_audit() == []


def test_a_registry_of_the_first_schema_is_upgraded_with_its_units(
    url: str, master: MasterKey
) -> None:
    from alembic import command

    from amrkit.registry.database import _alembic_config

    engine = make_engine(url, create=True)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    assert current_revision(engine) == "0001"
    engine.dispose()
    with Registry.open(url, master, create=True) as registry:
        assert current_revision(make_engine(url)) == head_revision() != "0001"
        add(registry)
        assert registry.get(UNIT).receiver is None
