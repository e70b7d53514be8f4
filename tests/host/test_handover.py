"""An alert the receiver has verified is not lost when nothing can take it
on: the outbox's disk is full, or the process dies before it is handed
over. The next run emits it again (marked redelivered), once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from amrkit.listen import capture_source, listen
from amrkit.outbox import Outbox
from amrkit.protocol import Frame, Kind, KnownUnit, derive_keys, encode
from amrkit.receiver import Receiver

UNIT = KnownUnit("0102030405060708", derive_keys(b"\x07" * 32, bytes.fromhex("0102030405060708")))
DOWN = "http://127.0.0.1:9/events"  # nothing listens: events stay in the outbox


class FullDisk(Outbox):
    """An outbox whose disk has no room left: SQLite's own error."""

    def put(self, event: dict[str, Any]) -> int:
        raise sqlite3.OperationalError("database or disk is full")


def capture(path: Path, frames: list[Frame]) -> Path:
    lines = [{"t": 100.0 + i, "ad": encode(UNIT.keys, f).hex()} for i, f in enumerate(frames)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def run(state: Path, source: Path, outbox: Outbox) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    receiver = Receiver([UNIT], state)
    try:
        asyncio.run(listen(receiver, capture_source(source), shown.append, outbox))
    finally:
        receiver.close()
        outbox.close()
    return shown


def test_an_alert_the_outbox_could_not_store_is_emitted_again_by_the_next_run(
    tmp_path: Path,
) -> None:
    state = tmp_path / "rx.sqlite"
    alert = capture(tmp_path / "alert.jsonl", [Frame(Kind.ALERT, 5, alert_id=4, clock_s=50)])
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        run(state, alert, FullDisk(tmp_path / "full.outbox", DOWN))
    # The disk has room again; the unit's next retry comes in too.
    retry = capture(
        tmp_path / "retry.jsonl",
        [Frame(Kind.ALERT_RETRANSMISSION, 6, alert_id=4, attempt=1, clock_s=60)],
    )
    outbox = Outbox(tmp_path / "rx.outbox", DOWN)
    shown = run(state, retry, outbox)
    alerts = [e for e in shown if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["alert_id"] == 4 and alerts[0]["redelivered"] is True
    with Outbox(tmp_path / "rx.outbox", DOWN) as again:
        assert again.pending() == 1  # stored for the webhook, once
    # Handed over now: a third run has nothing to say again.
    assert run(state, retry, Outbox(tmp_path / "rx.outbox", DOWN)) == []


def test_an_alert_handed_over_is_not_emitted_again(tmp_path: Path) -> None:
    state = tmp_path / "rx.sqlite"
    alert = capture(tmp_path / "alert.jsonl", [Frame(Kind.ALERT, 5, alert_id=4, clock_s=50)])
    first = run(state, alert, Outbox(tmp_path / "rx.outbox", DOWN))
    assert [e["event"] for e in first] == ["alert"] and "redelivered" not in first[0]
    assert run(state, alert, Outbox(tmp_path / "rx.outbox", DOWN)) == []
