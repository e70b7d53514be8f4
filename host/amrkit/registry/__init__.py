"""The unit registry: units through their lifecycle, their keys sealed under
a master key, signed check reports and a hash-chained audit log, in SQLite
or PostgreSQL (docs/registry.md)."""

from __future__ import annotations

from amrkit.registry.audit import AuditEntry
from amrkit.registry.caseref import validate_case_ref
from amrkit.registry.errors import (
    MasterKeyError,
    NotInitialised,
    RegistryError,
    RegistryUnavailable,
    TransitionRefused,
    UnknownUnit,
)
from amrkit.registry.lifecycle import State, parse_state
from amrkit.registry.masterkey import MasterKey
from amrkit.registry.records import ReportRecord, UnitRecord
from amrkit.registry.store import Registry, Step

__all__ = [
    "AuditEntry",
    "MasterKey",
    "MasterKeyError",
    "NotInitialised",
    "Registry",
    "RegistryError",
    "RegistryUnavailable",
    "ReportRecord",
    "State",
    "Step",
    "TransitionRefused",
    "UnitRecord",
    "UnknownUnit",
    "parse_state",
    "validate_case_ref",
]
