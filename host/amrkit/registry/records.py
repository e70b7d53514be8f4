"""What the registry hands out about units and reports: plain values, no
secrets, no database session behind them."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from amrkit.registry.lifecycle import State

_UNIT_ID = re.compile(r"[0-9a-f]{16}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def normal_unit_id(value: str) -> str:
    """A unit id as stored: 16 lowercase hex digits (8 bytes)."""
    unit_id = value.strip().lower()
    if not _UNIT_ID.fullmatch(unit_id):
        raise ValueError(f"unit id {value!r} is not 16 hex digits (8 bytes)")
    return unit_id


def normal_mac(value: str) -> str:
    """A MAC address as stored: aa:bb:cc:dd:ee:ff."""
    mac = value.strip().lower().replace("-", ":")
    if len(mac) == 12 and ":" not in mac:
        mac = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    if not _MAC.fullmatch(mac):
        raise ValueError(f"MAC address {value!r} is not six hex bytes (aa:bb:cc:dd:ee:ff)")
    return mac


@dataclass(frozen=True)
class UnitRecord:
    unit_id: str
    state: State
    board: str
    chip: str
    mac: str
    app_version: str | None
    app_hash: str | None
    generation: int
    has_keys: bool
    heartbeat_s: int
    case_ref: str | None
    receiver: str | None
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class ReportRecord:
    id: int
    unit_id: str
    provisioning: int
    generation: int
    passed: bool
    report: dict[str, Any]
    actor: str
    created_at: str
    signature_ok: bool
