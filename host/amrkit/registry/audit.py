"""The audit chain: every action is a row whose MAC (HMAC-SHA256 under the
registry secret) covers the previous row's MAC and the row's own canonical
content. The chain's head (count of rows and last MAC) is kept in the meta
table under its own MAC, so deleting the last rows is found too.

Verification names each problem: an edited row (its MAC does not match its
content), a deleted row (a row's predecessor MAC is nowhere in the chain, or
the head counts more rows than there are), a reordered row (its predecessor
is in the chain, but elsewhere).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from amrkit.registry.sealing import canonical, mac, same

GENESIS = "0" * 64
_ROW = b"audit-row"
_HEAD = b"audit-head"
_FORBIDDEN = {"enc", "id_key", "ack", "key", "keys", "secret", "master_key", "passphrase"}


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    unit_id: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "unit": self.unit_id,
            "detail": self.detail,
        }


def detail_text(detail: dict[str, Any]) -> str:
    """Canonical JSON of an audit detail; refuses anything that looks like a secret."""
    _check_no_secrets(detail)
    return canonical(detail).decode()


def _check_no_secrets(value: Any) -> None:
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("audit details hold no bytes (secrets stay out of the log)")
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in _FORBIDDEN:
                raise TypeError(f"audit detail field {key!r} could hold a secret")
            _check_no_secrets(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_no_secrets(item)


def row_mac(
    secret: bytes,
    prev_mac: str,
    at: str,
    actor: str,
    action: str,
    unit_id: str | None,
    detail: str,
) -> str:
    content = canonical(
        {"at": at, "actor": actor, "action": action, "unit": unit_id, "detail": detail}
    )
    return mac(secret, _ROW, prev_mac.encode(), content)


def head_mac(secret: bytes, count: int, last_mac: str) -> str:
    return mac(secret, _HEAD, str(count).encode(), last_mac.encode())


def head_value(secret: bytes, count: int, last_mac: str) -> str:
    return json.dumps(
        {"count": count, "mac": last_mac, "tag": head_mac(secret, count, last_mac)},
        sort_keys=True,
    )


def parse_head(value: str | None) -> tuple[int, str, str] | None:
    """(count, last MAC, tag) of a stored head, None if absent or unreadable."""
    if value is None:
        return None
    try:
        head = json.loads(value)
        return int(head["count"]), str(head["mac"]), str(head["tag"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class StoredRow:
    """An audit row as read back, for verification."""

    seq: int
    at: str
    actor: str
    action: str
    unit_id: str | None
    detail: str
    prev_mac: str
    mac: str


def verify_chain(secret: bytes, rows: list[StoredRow], head: str | None) -> list[str]:
    """Every problem of the chain, in order; empty if it is intact."""
    problems: list[str] = []
    by_mac = {row.mac: row for row in rows}
    prev = GENESIS
    for index, row in enumerate(rows):
        expected = row_mac(
            secret, row.prev_mac, row.at, row.actor, row.action, row.unit_id, row.detail
        )
        if not same(expected, row.mac):
            problems.append(
                f"entry {row.seq} ({row.action}, {row.at}) was edited: its MAC does not "
                "match its content"
            )
        elif not same(row.prev_mac, prev):
            earlier = by_mac.get(row.prev_mac)
            if row.prev_mac == GENESIS or earlier is not None:
                where = "the start" if earlier is None else f"entry {earlier.seq}"
                problems.append(
                    f"entry {row.seq} ({row.action}) is out of order: it was written "
                    f"after {where}, not after "
                    + (f"entry {rows[index - 1].seq}" if index else "the start")
                )
            else:
                problems.append(
                    f"an entry before entry {row.seq} ({row.action}) was deleted: the entry "
                    "it was chained to is missing"
                )
        if index and row.seq != rows[index - 1].seq + 1 and same(row.prev_mac, prev):
            problems.append(f"entry {row.seq} was renumbered (after {rows[index - 1].seq})")
        prev = row.mac
    parsed = parse_head(head)
    if parsed is None:
        problems.append("the chain head is missing or unreadable: the log cannot be vouched for")
        return problems
    count, last, tag = parsed
    if not same(head_mac(secret, count, last), tag):
        problems.append("the chain head was edited: its MAC does not match")
        return problems
    if count > len(rows):
        missing = count - len(rows)
        if last not in by_mac:
            problems.append(
                f"the last {'entry was' if missing == 1 else f'{missing} entries were'} "
                f"deleted: the head counts {count} entries, {len(rows)} are left"
            )
        else:
            problems.append(f"{missing} entries were deleted: the head counts {count}")
    elif count < len(rows):
        problems.append(
            f"{len(rows) - count} entries were added outside the registry: the head "
            f"counts {count}, there are {len(rows)}"
        )
    elif rows and not same(rows[-1].mac, last):
        problems.append(
            f"the last entry ({rows[-1].seq}) is not the one the head names: rows were "
            "reordered or replaced"
        )
    return problems
