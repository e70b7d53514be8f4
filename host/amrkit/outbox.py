"""A durable webhook outbox: events are committed to SQLite, then POSTed in order.

Every event is written (WAL, synchronous=FULL) before any forwarding attempt.
The forwarder sends the oldest undelivered event as a JSON POST with an
`Idempotency-Key: <event id>` header and moves on only when the endpoint
answers 2xx, so alerts never overtake one another. Delivery is at-least-once:
a crash between the endpoint's 2xx and the local commit resends the event with
the same key. Events still pending when the process stops are sent by the next
Outbox opened on the same file.

Only one Outbox should forward from a given database file at a time.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 1.0
JITTER = 0.1  # each back-off is shortened by up to this fraction, never lengthened
POLL_S = 0.2  # how often waits look at the stop event
MAX_ERROR_CHARS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered REAL NULL
);
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (id) WHERE delivered IS NULL;
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report 3xx as failures: following one would turn the POST into a GET."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def check_url(url: str) -> None:
    """A ValueError saying what is wrong with `url` unless urllib can POST to it."""
    example = "e.g. https://example.org/alerts"
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"the webhook URL holds spaces or control characters; {example}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as err:
        raise ValueError(f"not a webhook URL ({err}); give a full URL, {example}") from None
    if parts.scheme not in ("http", "https"):
        # The URL itself is not echoed: webhook URLs often carry secret tokens.
        raise ValueError(
            f"webhook URL scheme {parts.scheme!r} is not supported; "
            "give an http:// or https:// URL, e.g. https://example.org/alerts"
        )
    if not parts.hostname:
        raise ValueError(
            "webhook URL names no host; give a full URL, e.g. https://example.org/alerts"
        )
    if parts.username is not None:
        raise ValueError(
            "the webhook URL holds a user name or password, which are not sent; "
            "put a token in its path or query instead"
        )
    if not (parts.path + parts.query).isascii():
        raise ValueError(
            "the webhook URL's path or query holds characters that are not ASCII; "
            "percent-encode them (%C3%A4 for ä)"
        )
    try:
        parts.hostname.encode("idna")  # how http.client sends it
    except UnicodeError:
        raise ValueError(
            f"the webhook URL's host is not a host name (an empty or too long label); {example}"
        ) from None


def _describe(err: BaseException) -> str:
    """Short text for last_error and the log; never the event body."""
    if isinstance(err, urllib.error.HTTPError):
        text = f"HTTP {err.code} {err.reason}"
        if 300 <= err.code < 400:
            text += " (redirects are not followed; configure the final URL)"
    elif isinstance(err, urllib.error.URLError):
        reason = err.reason
        text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    else:
        text = f"{type(err).__name__}: {err}"
    return text[:MAX_ERROR_CHARS]


class Outbox:
    """Durable, ordered, at-least-once forwarding of JSON events to one URL."""

    def __init__(
        self,
        path: Path | str,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Open (creating if needed) the outbox at `path`, forwarding to `url`.

        `clock` and `sleep` time the back-off only; `sleep` must advance `clock`.
        """
        check_url(url)
        if timeout_s <= 0 or max_backoff_s <= 0:
            raise ValueError("timeout_s and max_backoff_s must be positive numbers of seconds")
        self.url = url
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._db_lock = threading.Lock()  # guards the connection
        self._send_lock = threading.Lock()  # one deliverer at a time keeps the order
        self._wake = threading.Event()
        self._closed = False
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            log.warning("outbox journal mode is %s, not wal", mode)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def put(self, event: dict[str, Any]) -> int:
        """Store `event` (committed before return) and return its id."""
        if not isinstance(event, dict):
            raise TypeError(f"an event must be a dict, not {type(event).__name__}")
        body = json.dumps(event, separators=(",", ":"), allow_nan=False)
        with self._db_lock:
            self._check_open()
            cur = self._db.execute(
                "INSERT INTO outbox (created, body) VALUES (?, ?)", (time.time(), body)
            )
        self._wake.set()
        assert cur.lastrowid is not None
        return cur.lastrowid

    def pending(self) -> int:
        """How many events are not yet delivered."""
        with self._db_lock:
            self._check_open()
            row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL")
            count: int = row.fetchone()[0]
        return count

    def deliver_once(self) -> int:
        """Send queued events in order until one fails; return how many were delivered."""
        return self._deliver()[0]

    def run(self, stop: threading.Event) -> None:
        """Forward until `stop` is set: back off on failure, wake when put() adds an event."""
        failures = 0
        while not stop.is_set() and not self._closed:
            self._wake.clear()  # a put() from here on wakes the idle wait below
            try:
                delivered, failed = self._deliver()
            except RuntimeError:
                if self._closed:  # close() won the race with the check above
                    return
                raise
            except sqlite3.OperationalError:
                log.exception("outbox database error; backing off")
                delivered, failed = 0, True
            if delivered:
                failures = 0
            if failed:
                failures += 1
                self._back_off(stop, self._backoff_s(failures))
            else:
                failures = 0
                while not stop.is_set() and not self._closed and not self._wake.wait(POLL_S):
                    pass

    def close(self) -> None:
        """Stop forwarding and close the database; undelivered events stay queued."""
        self._closed = True
        self._wake.set()
        with self._send_lock, self._db_lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("outbox is closed")

    def _backoff_s(self, failures: int) -> float:
        nominal = min(self.max_backoff_s, INITIAL_BACKOFF_S * 2.0 ** min(failures - 1, 62))
        return nominal * (1.0 - JITTER * random.random())

    def _back_off(self, stop: threading.Event, delay: float) -> None:
        deadline = self._clock() + delay
        while not stop.is_set() and not self._closed:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._sleep(min(remaining, POLL_S))

    def _deliver(self) -> tuple[int, bool]:
        """(events delivered, whether an attempt failed)."""
        delivered = 0
        with self._send_lock:
            while True:
                with self._db_lock:
                    self._check_open()
                    head = self._db.execute(
                        "SELECT id, body FROM outbox WHERE delivered IS NULL ORDER BY id LIMIT 1"
                    ).fetchone()
                if head is None:
                    return delivered, False
                event_id, body = head
                error = self._post(event_id, body)
                with self._db_lock:
                    if error is None:
                        self._db.execute(
                            "UPDATE outbox SET attempts = attempts + 1, delivered = ? WHERE id = ?",
                            (time.time(), event_id),
                        )
                    else:
                        self._db.execute(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                            "WHERE id = ?",
                            (error, event_id),
                        )
                if error is not None:
                    log.warning("outbox event %d not delivered: %s", event_id, error)
                    return delivered, True
                delivered += 1

    def _post(self, event_id: int, body: str) -> str | None:
        """POST one event; None on 2xx, else what went wrong."""
        request = urllib.request.Request(
            self.url,
            data=body.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": str(event_id),
                "User-Agent": "amrkit-outbox",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status: int = response.status
        except (OSError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()
            return _describe(err)
        if not 200 <= status < 300:  # urllib passes 1xx/2xx only; be explicit anyway
            return f"HTTP {status}"
        return None
