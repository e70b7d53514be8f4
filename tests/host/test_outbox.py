"""The webhook outbox against a real HTTP endpoint on 127.0.0.1: events are
stored before forwarding, retried until accepted, kept in order across a
restart, sent with idempotency keys; back-off doubles up to its cap."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from amrkit import outbox as outbox_module
from amrkit.outbox import JITTER, Outbox

WAIT_S = 2.0  # bound on any real wait for the endpoint or the forwarder thread


@dataclass
class Received:
    key: str | None
    content_type: str | None
    body: dict[str, Any]
    status: int
    stamp: float | None


class Hook:
    """A webhook endpoint answering from a script of statuses, then `default`."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        default: int = 200,
        stamp: Callable[[], float] | None = None,
    ) -> None:
        self.script = list(statuses or [])
        self.default = default
        self.stamp = stamp
        self.requests: list[Received] = []
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with hook.changed:
                    status = hook.script.pop(0) if hook.script else hook.default
                    hook.requests.append(
                        Received(
                            self.headers.get("Idempotency-Key"),
                            self.headers.get("Content-Type"),
                            body,
                            status,
                            hook.stamp() if hook.stamp else None,
                        )
                    )
                    hook.changed.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def accepted(self) -> list[Received]:
        with self.changed:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_accepted(self, count: int) -> None:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(200 <= r.status < 300 for r in self.requests) >= count, WAIT_S
            )
        assert ok, f"endpoint accepted fewer than {count} events in {WAIT_S} s"

    def close(self) -> None:
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_S)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def hooks() -> Iterator[Callable[..., Hook]]:
    started: list[Hook] = []

    def start(*args: Any, **kwargs: Any) -> Hook:
        started.append(Hook(*args, **kwargs))
        return started[-1]

    yield start
    for hook in started:
        hook.close()


@pytest.fixture
def down_url(hooks: Callable[..., Hook]) -> str:
    """The URL of an endpoint that has gone away (connection refused)."""
    hook = hooks()
    hook.close()
    return hook.url


def _rows(db: Path) -> list[tuple[int, dict[str, Any], int, str | None, float | None]]:
    with sqlite3.connect(db) as raw:
        rows = raw.execute(
            "SELECT id, body, attempts, last_error, delivered FROM outbox ORDER BY id"
        ).fetchall()
    return [(i, json.loads(body), n, err, done) for i, body, n, err, done in rows]


EVENTS = [{"event": "alert", "unit": "0a1b", "alert_id": n, "secret": f"s{n}"} for n in range(5)]


def test_put_stores_before_forwarding(tmp_path: Path, down_url: str) -> None:
    db = tmp_path / "outbox.db"
    with Outbox(db, down_url, timeout_s=1.0) as ob:
        ids = [ob.put(e) for e in EVENTS[:3]]
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert ob.pending() == 3
        # Committed and readable by another connection, before any attempt.
        assert [(i, body, n) for i, body, n, _, _ in _rows(db)] == [
            (i, e, 0) for i, e in zip(ids, EVENTS[:3], strict=True)
        ]
        assert ob.deliver_once() == 0
        assert ob.pending() == 3
    rows = _rows(db)
    assert all(done is None for *_, done in rows)
    assert [n for _, _, n, _, _ in rows] == [1, 0, 0]  # only the head was tried
    error = rows[0][3]
    assert error and "refused" in error.lower()
    assert "s0" not in error and "alert" not in error
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retried_until_accepted_in_order_with_keys(
    tmp_path: Path, hooks: Callable[..., Hook]
) -> None:
    hook = hooks([500, 503])
    db = tmp_path / "outbox.db"
    with Outbox(db, hook.url) as ob:
        ids = [ob.put(e) for e in EVENTS[:3]]
        assert ob.deliver_once() == 0
        assert ob.deliver_once() == 0
        assert ob.deliver_once() == 3
        assert ob.pending() == 0
        assert ob.deliver_once() == 0
    keys = [str(i) for i in ids]
    assert [r.key for r in hook.requests] == [keys[0]] * 3 + keys[1:]
    assert [r.status for r in hook.requests] == [500, 503, 200, 200, 200]
    assert all(r.content_type == "application/json" for r in hook.requests)
    assert [r.body for r in hook.accepted()] == EVENTS[:3]
    rows = _rows(db)
    assert [n for _, _, n, _, _ in rows] == [3, 1, 1]
    assert rows[0][3] is not None and rows[0][3].startswith("HTTP 503")
    assert all(done is not None for *_, done in rows)


def test_redirect_is_a_failure_not_a_get(tmp_path: Path, hooks: Callable[..., Hook]) -> None:
    hook = hooks([302])
    with Outbox(tmp_path / "outbox.db", hook.url) as ob:
        ob.put(EVENTS[0])
        assert ob.deliver_once() == 0
        assert ob.pending() == 1
    assert "redirect" in (_rows(tmp_path / "outbox.db")[0][3] or "")
    assert [r.status for r in hook.requests] == [302]


@pytest.mark.parametrize("clean", [True, False], ids=["closed", "abandoned"])
def test_restart_delivers_pending_in_order(
    tmp_path: Path, hooks: Callable[..., Hook], clean: bool
) -> None:
    hook = hooks([200, 200, 500])
    db = tmp_path / "outbox.db"
    first = Outbox(db, hook.url)
    ids = [first.put(e) for e in EVENTS]
    assert first.deliver_once() == 2
    if clean:
        first.close()
    try:
        with Outbox(db, hook.url) as second:
            assert second.pending() == 3
            assert second.deliver_once() == 3
            assert second.pending() == 0
            assert second.put({"event": "heartbeat"}) > ids[-1]  # ids are never reused
    finally:
        first.close()
    accepted = hook.accepted()
    assert [r.key for r in accepted] == [str(i) for i in ids]  # each once, in order
    assert [r.body for r in accepted] == EVENTS


def test_run_backs_off_delivers_and_wakes_on_put(
    tmp_path: Path, hooks: Callable[..., Hook], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long idle poll: the second event is only prompt if put() wakes the loop.
    monkeypatch.setattr(outbox_module, "POLL_S", 30.0)
    hook = hooks([500])
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    ob = Outbox(tmp_path / "outbox.db", hook.url, clock=lambda: now[0], sleep=sleep)
    stop = threading.Event()
    forwarder = threading.Thread(target=ob.run, args=(stop,), daemon=True)
    forwarder.start()
    try:
        ob.put(EVENTS[0])
        hook.wait_accepted(1)
        ob.put(EVENTS[1])
        hook.wait_accepted(2)
    finally:
        stop.set()
        ob.close()  # also wakes the idle wait
        forwarder.join(WAIT_S)
    assert not forwarder.is_alive()
    assert [r.status for r in hook.requests] == [500, 200, 200]
    assert [r.body for r in hook.accepted()] == EVENTS[:2]
    assert len(slept) == 1 and 1.0 - JITTER <= slept[0] <= 1.0  # one back-off, then none


@pytest.mark.parametrize(
    ("cap", "nominal"),
    [(60.0, [1, 2, 4, 8, 16, 32, 60, 60]), (5.0, [1, 2, 4, 5, 5, 5])],
)
def test_backoff_doubles_and_is_capped(
    tmp_path: Path, hooks: Callable[..., Hook], cap: float, nominal: list[float]
) -> None:
    now = [0.0]
    slept: list[float] = []
    hook = hooks(default=500, stamp=lambda: now[0])
    stop = threading.Event()

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s
        if len(hook.requests) > len(nominal):
            stop.set()

    with Outbox(
        tmp_path / "outbox.db", hook.url, max_backoff_s=cap, clock=lambda: now[0], sleep=sleep
    ) as ob:
        ob.put(EVENTS[0])
        ob.run(stop)  # returns once the fake sleep sets stop
        assert ob.pending() == 1
    stamps = [r.stamp or 0.0 for r in hook.requests]
    waits = [b - a for a, b in itertools.pairwise(stamps)][: len(nominal)]
    assert len(waits) == len(nominal)
    for wait, expected in zip(waits, nominal, strict=True):
        assert expected * (1 - JITTER) - 1e-9 <= wait <= expected + 1e-9
    assert any(wait < expected - 1e-9 for wait, expected in zip(waits, nominal, strict=True))
    assert all(0 < s <= outbox_module.POLL_S for s in slept)  # stop is checked between slices
    assert _rows(tmp_path / "outbox.db")[0][2] == len(hook.requests)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "example.org/hook",
        "localhost:8080",
        "",
        "file:///tmp/hook",
        "http://",
        "https:///path-only",
    ],
)
def test_bad_url_is_refused(tmp_path: Path, url: str) -> None:
    db = tmp_path / "outbox.db"
    with pytest.raises(ValueError, match=r"http:// or https://|full URL"):
        Outbox(db, url)
    assert not db.exists()


def test_bad_url_message_keeps_secrets_out(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        Outbox(tmp_path / "outbox.db", "ftp://user:hunter2@example.org/hook?token=hunter2")
    assert "hunter2" not in str(err.value)
    assert "'ftp'" in str(err.value)


def test_unserialisable_event_is_refused_and_not_stored(tmp_path: Path, down_url: str) -> None:
    with Outbox(tmp_path / "outbox.db", down_url) as ob:
        with pytest.raises(ValueError):
            ob.put({"rssi": float("nan")})
        with pytest.raises(TypeError):
            ob.put({"when": object()})
        assert ob.pending() == 0
