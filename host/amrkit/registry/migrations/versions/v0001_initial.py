"""The first registry schema: meta, units, unit keys, check reports, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "registry_meta",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("board", sa.String(64), nullable=False),
        sa.Column("chip", sa.String(32), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("app_version", sa.String(64), nullable=True),
        sa.Column("app_hash", sa.String(128), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("provisionings", sa.Integer(), nullable=False),
        sa.Column("heartbeat_s", sa.Integer(), nullable=False),
        sa.Column("case_ref", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_units_state", "units", ["state"])
    op.create_table(
        "unit_keys",
        sa.Column("unit_id", sa.String(16), sa.ForeignKey("units.unit_id"), primary_key=True),
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "check_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(16), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("provisioning", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_check_reports_unit_id", "check_reports", ["unit_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_mac", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_unit_id", "audit_log", ["unit_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("check_reports")
    op.drop_table("unit_keys")
    op.drop_index("ix_units_state", "units")
    op.drop_table("units")
    op.drop_table("registry_meta")
