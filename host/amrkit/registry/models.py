"""The registry's tables (SQLAlchemy 2 ORM). The schema is made and changed
only by the Alembic migrations in migrations/versions, never by create_all.

Times are ISO 8601 UTC text, JSON is canonical text: both are MACed as
stored, so they must read back byte for byte the same on every backend.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Registry-wide values: the master key's check value, the sealed
    registry secret, the audit chain's head."""

    __tablename__ = "registry_meta"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UnitRow(Base):
    __tablename__ = "units"
    unit_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    board: Mapped[str] = mapped_column(String(64))
    chip: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str] = mapped_column(String(17))
    app_version: Mapped[str | None] = mapped_column(String(64))
    app_hash: Mapped[str | None] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer, default=0)  # last key generation given
    provisionings: Mapped[int] = mapped_column(Integer, default=0)  # times provisioned
    heartbeat_s: Mapped[int] = mapped_column(Integer, default=3600)
    case_ref: Mapped[str | None] = mapped_column(String(32))
    # The receiver the current key generation was exported to (a bundle);
    # another receiver needs new keys, so the first one cannot follow it.
    receiver: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class UnitKeyRow(Base):
    """One generation of a unit's keys, sealed under the master key."""

    __tablename__ = "unit_keys"
    unit_id: Mapped[str] = mapped_column(String(16), ForeignKey("units.unit_id"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[str] = mapped_column(String(32))


class ReportRow(Base):
    """A check report, signed under the registry secret."""

    __tablename__ = "check_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(String(16), ForeignKey("units.unit_id"), index=True)
    provisioning: Mapped[int] = mapped_column(Integer)  # the unit's provisionings then
    generation: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    """One action; `mac` covers `prev_mac` and the row's own content."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[str | None] = mapped_column(String(16), index=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
