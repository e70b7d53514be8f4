"""The unit registry: units, their sealed keys, signed check reports and the
audit chain, in one database (amrkit.registry.database).

Every change goes through `Registry.step`, one database transaction that
also writes the step's audit row: it commits at the end of the block, or
rolls back whole if the block raises, so a step that fails on the unit
leaves the registry as it was. A refused lifecycle step is itself audited
(in a transaction of its own) and then raised.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from amrkit.protocol import KnownUnit, UnitKeys
from amrkit.registry import audit
from amrkit.registry.caseref import validate_case_ref
from amrkit.registry.database import make_engine, migrate, resolve_url, shown, unavailable
from amrkit.registry.errors import (
    MasterKeyError,
    NotInitialised,
    RegistryError,
    TransitionRefused,
    UnknownUnit,
)
from amrkit.registry.lifecycle import State, refusal
from amrkit.registry.masterkey import MasterKey
from amrkit.registry.models import AuditRow, Meta, ReportRow, UnitKeyRow, UnitRow
from amrkit.registry.records import ReportRecord, UnitRecord, normal_mac, normal_unit_id
from amrkit.registry.sealing import canonical, key_check_value, mac, same, seal, unseal

SECRET_LENGTH = 32
KEY_LENGTH = 16
_SECRET_AAD = b"amr-registry secret v1"
_REPORT = b"check-report"
_ACTOR = re.compile(r"[\w.@+-][\w .@+-]{0,63}")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _keys_aad(unit_id: str, generation: int) -> bytes:
    return f"amr-unit-keys v1|{unit_id}|{generation}".encode()


def check_actor(actor: str) -> str:
    if not _ACTOR.fullmatch(actor):
        raise RegistryError(
            f"actor {actor!r} is not a user name (1-64 letters, digits, . _ @ + - or spaces)"
        )
    return actor


class Registry:
    """An open registry. Use `Registry.open`, then `with registry: ...` or close()."""

    def __init__(self, engine: Engine, master_key: MasterKey, secret: bytes, created: bool):
        self._engine = engine
        self._master = master_key
        self._secret = secret
        self.created = created  # this open initialised the registry

    def __repr__(self) -> str:
        return f"Registry({self.url})"

    @property
    def url(self) -> str:
        """The database URL, without its password."""
        return shown(self._engine.url)

    # --- opening -----------------------------------------------------------

    @classmethod
    def open(cls, url: str | None, master_key: MasterKey, *, create: bool = False) -> Registry:
        """Open (and migrate to the head schema) the registry at `url`
        (amrkit.registry.database.resolve_url). With `create`, a registry
        without a secret is initialised: a new secret sealed under `master_key`."""
        engine = make_engine(resolve_url(url), create)
        try:
            migrate(engine)
            with Session(engine) as session, session.begin():
                secret, created = cls._open_secret(session, master_key, create, shown(engine.url))
        except SQLAlchemyError as err:
            engine.dispose()
            raise unavailable(engine, err) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, master_key, secret, created)

    @staticmethod
    def _open_secret(
        session: Session, master_key: MasterKey, create: bool, where: str
    ) -> tuple[bytes, bool]:
        kcv = session.get(Meta, "kcv")
        sealed = session.get(Meta, "secret")
        if kcv is None or sealed is None:
            if kcv is not None or sealed is not None:
                raise RegistryError(f"the registry {where} is half initialised: restore a backup")
            if not create:
                raise NotInitialised(
                    f"the registry {where} is not initialised: run `amr units init` first"
                )
            secret = os.urandom(SECRET_LENGTH)
            session.add(Meta(name="kcv", value=key_check_value(master_key.secret)))
            session.add(
                Meta(
                    name="secret",
                    value=base64.b64encode(seal(master_key.secret, secret, _SECRET_AAD)).decode(),
                )
            )
            session.flush()
            _append_audit(session, secret, "registry", "init", None, {"url": where})
            return secret, True
        if not same(kcv.value, key_check_value(master_key.secret)):
            raise MasterKeyError(
                f"wrong master key for the registry {where} (from {master_key.source}): "
                "use the key this registry was initialised with"
            )
        opened = unseal(master_key.secret, base64.b64decode(sealed.value), _SECRET_AAD)
        if opened is None:
            raise RegistryError(
                f"the registry secret in {where} cannot be opened although the master key "
                "is right: the database was altered; restore a backup"
            )
        return opened, False

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- changing: one step, one transaction, one audit row ----------------

    @contextmanager
    def step(self, actor: str, action: str, unit_id: str) -> Iterator[Step]:
        """One transaction on one unit; commits with its audit row at the end
        of the block, rolls back whole if the block raises."""
        actor = check_actor(actor)
        unit_id = _unit_id(unit_id)
        session = Session(self._engine, expire_on_commit=False)
        try:
            with session.begin():
                tx = Step(self, session, actor, action, unit_id)
                yield tx
                tx._finish()
        except TransitionRefused as err:
            session.close()
            self._audit_refusal(actor, action, unit_id, str(err))
            raise
        except SQLAlchemyError as err:
            raise unavailable(self._engine, err) from None
        finally:
            session.close()

    @contextmanager
    def steps(self, actor: str, action: str, unit_ids: list[str]) -> Iterator[list[Step]]:
        """One step on each of several units, all in one transaction: all of
        them commit (an audit row each), or none does."""
        actor = check_actor(actor)
        ids = [_unit_id(u) for u in unit_ids]
        if len(set(ids)) != len(ids):
            raise RegistryError("a unit is named twice")
        session = Session(self._engine, expire_on_commit=False)
        current = ids[0] if ids else ""
        try:
            with session.begin():
                txs = []
                for unit_id in ids:
                    current = unit_id
                    txs.append(Step(self, session, actor, action, unit_id))
                yield txs
                for tx in txs:
                    tx._finish()
        except TransitionRefused as err:
            session.close()
            self._audit_refusal(actor, action, current, str(err))
            raise
        except SQLAlchemyError as err:
            raise unavailable(self._engine, err) from None
        finally:
            session.close()

    def _audit_refusal(self, actor: str, action: str, unit_id: str, reason: str) -> None:
        try:
            with Session(self._engine) as session, session.begin():
                _append_audit(
                    session, self._secret, actor, f"{action} refused", unit_id, {"reason": reason}
                )
        except SQLAlchemyError as err:
            raise unavailable(self._engine, err) from None

    # --- reading -------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self._engine) as session:
                yield session
        except SQLAlchemyError as err:
            raise unavailable(self._engine, err) from None

    def get(self, unit_id: str) -> UnitRecord:
        with self._read() as session:
            return _record(session, _unit_row(session, _unit_id(unit_id)))

    def list_units(self, state: State | None = None) -> list[UnitRecord]:
        """Units sorted by id, only those in `state` if given."""
        with self._read() as session:
            query = select(UnitRow).order_by(UnitRow.unit_id)
            if state is not None:
                query = query.where(UnitRow.state == state.value)
            return [_record(session, row) for row in session.scalars(query)]

    def next_generation(self, unit_id: str) -> int:
        return self.get(unit_id).generation + 1

    def keys(self, unit_id: str) -> KnownUnit:
        """The unit's current keys (for bundles and the unit's own workflows)."""
        with self._read() as session:
            row = _unit_row(session, _unit_id(unit_id))
            return KnownUnit(row.unit_id, self._open_keys(session, row), row.heartbeat_s)

    def _open_keys(self, session: Session, row: UnitRow) -> UnitKeys:
        stored = session.get(UnitKeyRow, (row.unit_id, row.generation))
        if stored is None:
            raise RegistryError(f"unit {row.unit_id} has no keys ({row.state}): provision it first")
        plain = unseal(self._master.secret, stored.sealed, _keys_aad(row.unit_id, row.generation))
        if plain is None or len(plain) != 3 * KEY_LENGTH:
            raise RegistryError(
                f"the keys of unit {row.unit_id} (generation {row.generation}) cannot be "
                "opened: they were altered or moved in the database; re-provision the unit"
            )
        return UnitKeys(plain[:16], plain[16:32], plain[32:])

    def reports(self, unit_id: str) -> list[ReportRecord]:
        with self._read() as session:
            _unit_row(session, _unit_id(unit_id))
            rows = session.scalars(
                select(ReportRow)
                .where(ReportRow.unit_id == _unit_id(unit_id))
                .order_by(ReportRow.id)
            )
            return [self._report(row) for row in rows]

    def verify_report(self, report_id: int) -> bool:
        """True if the stored report is as it was signed."""
        with self._read() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise RegistryError(f"no check report {report_id} in the registry")
            return self._report_ok(row)

    def _report_ok(self, row: ReportRow) -> bool:
        return same(row.mac, _report_mac(self._secret, row))

    def _report(self, row: ReportRow) -> ReportRecord:
        return ReportRecord(
            id=row.id,
            unit_id=row.unit_id,
            provisioning=row.provisioning,
            generation=row.generation,
            passed=row.passed,
            report=json.loads(row.body),
            actor=row.actor,
            created_at=row.created_at,
            signature_ok=self._report_ok(row),
        )

    def audit(self, unit_id: str | None = None) -> list[audit.AuditEntry]:
        """The audit log in order, only one unit's entries if given."""
        with self._read() as session:
            query = select(AuditRow).order_by(AuditRow.seq)
            if unit_id is not None:
                query = query.where(AuditRow.unit_id == _unit_id(unit_id))
            return [
                audit.AuditEntry(r.seq, r.at, r.actor, r.action, r.unit_id, json.loads(r.detail))
                for r in session.scalars(query)
            ]

    def verify_audit(self) -> list[str]:
        """Every problem of the audit chain; empty if it is intact."""
        with self._read() as session:
            rows = [
                audit.StoredRow(
                    r.seq, r.at, r.actor, r.action, r.unit_id, r.detail, r.prev_mac, r.mac
                )
                for r in session.scalars(select(AuditRow).order_by(AuditRow.seq))
            ]
            head = session.get(Meta, "audit_head")
            return audit.verify_chain(self._secret, rows, head.value if head else None)

    def export_csv(self, out: TextIO, state: State | None = None) -> int:
        """The units (no secrets) as CSV; returns how many."""
        from amrkit.registry.export import write_units_csv

        return write_units_csv(out, self.list_units(state))


class Step:
    """What one `Registry.step` block does to its unit, all in its transaction."""

    def __init__(
        self, registry: Registry, session: Session, actor: str, action: str, unit_id: str
    ) -> None:
        self._registry = registry
        self._session = session
        self.actor = actor
        self.action = action
        self.unit_id = unit_id
        self._detail: dict[str, Any] = {}
        self._keys_stored = False
        self._row: UnitRow | None = session.scalars(
            select(UnitRow).where(UnitRow.unit_id == unit_id).with_for_update()
        ).first()

    def __repr__(self) -> str:
        return f"Step({self.action} {self.unit_id} by {self.actor})"

    def _unit(self) -> UnitRow:
        if self._row is None:
            raise UnknownUnit(self.unit_id)
        return self._row

    def _touch(self) -> UnitRow:
        row = self._unit()
        row.updated_at = now()
        return row

    @property
    def state(self) -> State:
        return State(self._unit().state)

    def unit(self) -> UnitRecord:
        self._session.flush()
        return _record(self._session, self._unit())

    def note(self, **detail: Any) -> None:
        """Add to this step's audit detail (never secrets: checked)."""
        audit.detail_text(detail)
        self._detail.update(detail)

    def add_unit(self, board: str, chip: str, mac: str, heartbeat_s: int = 3600) -> UnitRecord:
        """A new unit, in stock."""
        if self._row is not None:
            raise RegistryError(f"unit {self.unit_id} is already in the registry ({self.state})")
        for name, value in (("board", board), ("chip", chip)):
            if not value.strip() or len(value) > 64:
                raise RegistryError(f"{name} {value!r} must be 1-64 characters")
        if not 1 <= heartbeat_s <= 7 * 24 * 3600:
            raise RegistryError(f"heartbeat {heartbeat_s} s is outside 1 s .. 7 days")
        try:
            mac = normal_mac(mac)
        except ValueError as err:
            raise RegistryError(str(err)) from None
        stamp = now()
        self._row = UnitRow(
            unit_id=self.unit_id,
            state=State.STOCK.value,
            board=board,
            chip=chip,
            mac=mac,
            generation=0,
            provisionings=0,
            heartbeat_s=heartbeat_s,
            created_at=stamp,
            updated_at=stamp,
        )
        self._session.add(self._row)
        self._detail.update(board=board, chip=chip, mac=mac, state=State.STOCK.value)
        return self.unit()

    def record_app(self, version: str, app_hash: str) -> None:
        """The app version and hash flashed onto the unit."""
        row = self._touch()
        row.app_version, row.app_hash = version[:64], app_hash[:128]
        self._detail.update(app_version=row.app_version, app_hash=row.app_hash)

    def next_generation(self) -> int:
        return self._unit().generation + 1

    def store_keys(self, generation: int, keys: UnitKeys, heartbeat_s: int | None = None) -> None:
        """Seal and store the unit's keys of a new generation: next_generation(),
        or later if the unit already holds a higher one (taken in a step that
        failed after the unit had written it: a generation is never reused)."""
        row = self._touch()
        if generation <= row.generation:
            raise RegistryError(
                f"key generation {generation} for unit {self.unit_id}: generations are never "
                f"reused, the next one is {row.generation + 1} (ask next_generation())"
            )
        parts = (keys.enc, keys.id, keys.ack)
        if any(len(part) != KEY_LENGTH for part in parts):
            raise RegistryError("unit keys are 16 bytes each (enc, id, ack)")
        self._session.add(
            UnitKeyRow(
                unit_id=self.unit_id,
                generation=generation,
                sealed=seal(
                    self._registry._master.secret,
                    b"".join(parts),
                    _keys_aad(self.unit_id, generation),
                ),
                created_at=now(),
            )
        )
        row.generation = generation
        row.receiver = None
        if heartbeat_s is not None:
            row.heartbeat_s = heartbeat_s
        self._keys_stored = True
        self._detail.update(key_generation=generation, heartbeat_s=row.heartbeat_s)

    def record_export(self, receiver: str) -> None:
        """The unit's current keys go to `receiver` (a bundle). Keys given to
        one receiver are never given to another: that needs new keys (amr
        provision), so the first receiver can no longer verify the unit."""
        row = self._unit()
        try:  # a receiver is named by a code like a case, never by its owner's name
            name = validate_case_ref(receiver.strip())
        except ValueError as err:
            raise RegistryError(f"receiver {receiver!r}: {err}") from None
        if self._registry_keys_missing(row):
            raise RegistryError(
                f"unit {self.unit_id} has no keys ({row.state}): provision it first"
            )
        if row.receiver not in (None, name):
            raise TransitionRefused(
                f"unit {self.unit_id}: its keys of generation {row.generation} went to receiver "
                f"{row.receiver!r}; to give it to {name!r}, rotate its keys first "
                "(amr provision on the wired link, then amr check)"
            )
        row.receiver = name
        self._touch()
        self._detail.update(receiver=name, key_generation=row.generation)

    def _registry_keys_missing(self, row: UnitRow) -> bool:
        return self._session.get(UnitKeyRow, (row.unit_id, row.generation)) is None

    def add_report(self, report: dict[str, Any]) -> int:
        """Record a check report, signed; "passed": true makes it a passing one."""
        row = self._unit()
        body = audit.detail_text(report)
        stored = ReportRow(
            unit_id=self.unit_id,
            provisioning=row.provisionings,
            generation=row.generation,
            passed=report.get("passed") is True,
            body=body,
            actor=self.actor,
            created_at=now(),
            mac="",
        )
        self._session.add(stored)
        self._session.flush()
        stored.mac = _report_mac(self._registry._secret, stored)
        self._detail.setdefault("reports", []).append({"id": stored.id, "passed": stored.passed})
        return stored.id

    def transition(
        self, to: State | str, detail: dict[str, Any] | None = None, *, case_ref: str | None = None
    ) -> None:
        """Move the unit to `to`, or raise TransitionRefused (state unchanged)."""
        row = self._unit()
        asked = State(to)
        current = State(row.state)
        extra = dict(detail or {})
        audit.detail_text(extra)
        why = refusal(current, asked)
        if why is None:
            why = self._guard(row, current, asked, extra, case_ref)
        if why is not None:
            raise TransitionRefused(f"unit {self.unit_id} is {current}, asked {asked}: {why}")
        if asked is State.PROVISIONED:
            row.provisionings += 1
        if asked is State.ISSUED:
            row.case_ref = case_ref
            extra["case_ref"] = case_ref
        if asked is State.RETURNED:
            extra["case_ref"] = row.case_ref
            row.case_ref = None
        if asked in (State.WIPED, State.RETIRED):
            gone = self._session.scalars(
                delete(UnitKeyRow)
                .where(UnitKeyRow.unit_id == self.unit_id)
                .returning(UnitKeyRow.generation)
            ).all()
            destroyed = len(gone)
            extra["key_generations_destroyed"] = destroyed
        row.state = asked.value
        self._touch()
        self._detail.setdefault("transitions", []).append(
            {"from": current.value, "to": asked.value, **extra}
        )

    def _guard(
        self,
        row: UnitRow,
        current: State,
        asked: State,
        detail: dict[str, Any],
        case_ref: str | None,
    ) -> str | None:
        if asked is State.PROVISIONED and not self._keys_stored:
            return "store the unit's new keys in this same step first (store_keys)"
        if asked in (State.CHECKED, State.ISSUED):
            problem = self._passing_check(row)
            if problem:
                return problem
        if asked is State.ISSUED:
            if case_ref is None:
                return "give the police case reference it is issued under"
            try:
                validate_case_ref(case_ref)
            except ValueError as err:
                return str(err)
        if asked is State.WIPED and detail.get("verified") is not True:
            return "the wipe must be verified on the unit (detail verified=true) before it counts"
        return None

    def _passing_check(self, row: UnitRow) -> str | None:
        rows = self._session.scalars(
            select(ReportRow).where(
                ReportRow.unit_id == row.unit_id,
                ReportRow.provisioning == row.provisionings,
                ReportRow.passed.is_(True),
            )
        ).all()
        if any(self._registry._report_ok(r) for r in rows):
            return None
        if rows:
            return "its passing check report fails its signature (altered): check the unit again"
        return "no passing check report since it was last provisioned: check the unit first"

    def _finish(self) -> None:
        _append_audit(
            self._session,
            self._registry._secret,
            self.actor,
            self.action,
            self.unit_id,
            self._detail,
        )


def _unit_id(value: str) -> str:
    try:
        return normal_unit_id(value)
    except ValueError as err:
        raise RegistryError(str(err)) from None


def _unit_row(session: Session, unit_id: str) -> UnitRow:
    row = session.get(UnitRow, unit_id)
    if row is None:
        raise UnknownUnit(unit_id)
    return row


def _record(session: Session, row: UnitRow) -> UnitRecord:
    has_keys = session.get(UnitKeyRow, (row.unit_id, row.generation)) is not None
    return UnitRecord(
        unit_id=row.unit_id,
        state=State(row.state),
        board=row.board,
        chip=row.chip,
        mac=row.mac,
        app_version=row.app_version,
        app_hash=row.app_hash,
        generation=row.generation,
        has_keys=has_keys,
        heartbeat_s=row.heartbeat_s,
        case_ref=row.case_ref,
        receiver=row.receiver,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _report_mac(secret: bytes, row: ReportRow) -> str:
    content = {
        "id": row.id,
        "unit": row.unit_id,
        "provisioning": row.provisioning,
        "generation": row.generation,
        "passed": row.passed,
        "body": row.body,
        "actor": row.actor,
        "at": row.created_at,
    }
    return mac(secret, _REPORT, canonical(content))


def _append_audit(
    session: Session,
    secret: bytes,
    actor: str,
    action: str,
    unit_id: str | None,
    detail: dict[str, Any],
) -> None:
    """Add one row to the chain and move its head, in the caller's transaction.
    The head row is locked (PostgreSQL) or the database is (SQLite: BEGIN
    IMMEDIATE), so concurrent steps chain one after another."""
    head = session.scalars(select(Meta).where(Meta.name == "audit_head").with_for_update()).first()
    if head is None:
        if session.scalar(select(func.count()).select_from(AuditRow)):
            raise RegistryError(
                "the audit chain head is missing: run `amr audit verify`; restore a backup"
            )
        count, prev = 0, audit.GENESIS
    else:
        parsed = audit.parse_head(head.value)
        if parsed is None or not same(audit.head_mac(secret, parsed[0], parsed[1]), parsed[2]):
            raise RegistryError(
                "the audit chain head fails its MAC: run `amr audit verify`; restore a backup"
            )
        count, prev = parsed[0], parsed[1]
    last = session.scalar(select(func.max(AuditRow.seq))) or 0
    at = now()
    text = audit.detail_text(detail)
    row_mac = audit.row_mac(secret, prev, at, actor, action[:64], unit_id, text)
    session.add(
        AuditRow(
            seq=max(last, count) + 1,
            at=at,
            actor=actor,
            action=action[:64],
            unit_id=unit_id,
            detail=text,
            prev_mac=prev,
            mac=row_mac,
        )
    )
    value = audit.head_value(secret, count + 1, row_mac)
    if head is None:
        session.add(Meta(name="audit_head", value=value))
    else:
        head.value = value
