"""The reference receiver: resolve, verify and de-duplicate v2 frames, and
tell frames that were held back before they reached it.

Per unit the receiver keeps a high-water mark (the highest verified
counter) and a look-ahead table mapping the rolling identifiers of the next
`window` counters to (unit, counter), so resolving a frame is one dict
lookup whatever the number of units. Units whose heartbeats stopped get a
deeper window, for a unit that kept sending while the receiver was away.

Each frame carries the unit's RTC clock. Per unit the receiver keeps an
anchor, (unit clock, receiver time) of the last frame heard on time, and
estimates how long before it was heard each new frame was made: an alert
held back (recorded, released later) is reported late, with its delay.

State (high-water marks, alerts already reported) lives in SQLite and is
committed before feed() returns the events of a frame, so no frame that made
an event is accepted again after the receiver is killed, however abruptly.
The file is in WAL mode with synchronous=NORMAL: a commit is in the
operating system's hands when it returns, which is all a process kill
(SIGKILL, SIGTERM, a crash, Android ending the app) needs. A new alert is
committed with synchronous=FULL, so it is on the storage itself and so is
everything committed before it; a power loss of the receiver can lose only
routine progress made since the last alert or checkpoint (docs/protocol.md
7.1).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amrkit.protocol import (
    ACK_AD_HEADER,
    BATTERY_UNKNOWN,
    FLAG_BELOW_FLOOR,
    FLAG_FAULT,
    FLAG_LOW_BATTERY,
    MAX_COUNTER,
    RID_LENGTH,
    Frame,
    FrameError,
    Kind,
    KnownUnit,
    ack_ad,
    decode,
    rid,
    split,
)

WINDOW = 256
DEEP_WINDOW = 4096
RECENT = 256  # verified identifiers remembered per unit, to name replays
# A frame is advertised many times (every 100 ms for 1-3 s): copies heard
# this soon after the first are duplicates, later ones are replays.
DUPLICATE_S = 30.0
SUPERVISION_FACTOR = 2.5  # heartbeat intervals of silence before "supervision lost"
# How much later than its unit clock says a frame may be heard and still be
# on time (docs/protocol.md 7.4): the frame's advertising window (a burst is
# up to 20 s), the scanner's interval (10.24 s for Android with the screen
# off), the clock's whole seconds, and the phone's own delays.
LATENCY_ALLOWANCE_S = 60.0
# Plus this much per second of unit clock since the anchor: the unit's clock
# runs on an RC oscillator (the ESP32-C3's 136 kHz RC_SLOW), calibrated
# against the crystal at boot but drifting with temperature in deep sleep.
CLOCK_DRIFT = 0.05

EVENT_NAMES = {
    Kind.ALERT: "alert",
    Kind.ALERT_RETRANSMISSION: "alert",
    Kind.HEARTBEAT: "heartbeat",
    Kind.TEST_PRESS: "test_press",
    Kind.LOW_BATTERY: "low_battery",
    Kind.FAULT: "fault",
}
# Every kind of event the receiver reports.
EVENT_KINDS = (*dict.fromkeys(EVENT_NAMES.values()), "supervision_lost", "supervision_restored")

# WITHOUT ROWID: one b-tree per table, so a frame's commit writes half the
# pages (tools/bench_receiver.py).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS unit_state (
    unit TEXT PRIMARY KEY,
    hwm INTEGER NOT NULL,
    newest_alert INTEGER NOT NULL,
    last_seen REAL,
    supervised INTEGER NOT NULL,
    anchor_clock INTEGER,
    anchor_t REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    unit TEXT NOT NULL,
    alert_id INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    event TEXT,
    handed_over INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (unit, alert_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS test_presses (
    unit TEXT NOT NULL,
    test_id INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (unit, test_id)
) WITHOUT ROWID;
"""


@dataclass
class _Track:
    known: KnownUnit
    hwm: int = -1
    newest_alert: int = -1
    last_seen: float | None = None  # None: never heard, not yet watched
    supervised: bool = True
    # (unit clock s, receiver time) of the last frame heard on time; None
    # before the first frame.
    anchor: tuple[int, float] | None = None
    ahead: dict[int, bytes] = field(default_factory=dict)  # counter -> rid in the table
    recent: deque[bytes] = field(default_factory=lambda: deque(maxlen=RECENT))
    alerts: set[int] = field(default_factory=set)
    tests: set[int] = field(default_factory=set)  # test presses reported


class Receiver:
    def __init__(
        self,
        units: Iterable[KnownUnit],
        db: Path | str = ":memory:",
        *,
        window: int = WINDOW,
        deep_window: int = DEEP_WINDOW,
    ) -> None:
        self.window = window
        self.deep_window = deep_window
        self.stats: Counter[str] = Counter()
        self._db = sqlite3.connect(str(db))
        self._db.execute("PRAGMA journal_mode = WAL")  # ":memory:" stays in memory
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_anchor_columns()
        self._tracks: dict[str, _Track] = {}
        self._table: dict[bytes, tuple[_Track, int]] = {}
        self._recent: dict[bytes, float] = {}  # verified identifier -> when
        # (unit, alert id) of the last accepted alert frame, first or
        # retransmission: what a receiver that can advertise acknowledges.
        self.last_alert: tuple[str, int] | None = None
        # (unit, test id) of the last accepted test press frame: acknowledged
        # the same way (the unit retries it like an alert until then), but
        # never an alert.
        self.last_test: tuple[str, int] | None = None
        for known in units:
            self._add(known)

    # -- set-up ------------------------------------------------------------

    def _add_anchor_columns(self) -> None:
        """A state file from before the unit clock gains its anchor columns,
        and its alerts (all handed over then) the hand-over columns."""
        added = (
            ("unit_state", "anchor_clock", "INTEGER"),
            ("unit_state", "anchor_t", "REAL"),
            ("alerts", "event", "TEXT"),
            ("alerts", "handed_over", "INTEGER NOT NULL DEFAULT 1"),
        )
        for table, name, kind in added:
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if name not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        self._db.commit()

    def _add(self, known: KnownUnit) -> None:
        track = _Track(known)
        row = self._db.execute(
            "SELECT hwm, newest_alert, last_seen, supervised, anchor_clock, anchor_t"
            " FROM unit_state WHERE unit = ?",
            (known.unit,),
        ).fetchone()
        if row:
            track.hwm, track.newest_alert, track.last_seen = row[0], row[1], row[2]
            track.supervised = bool(row[3])
            track.anchor = None if row[4] is None else (row[4], row[5])
            track.alerts = {
                a
                for (a,) in self._db.execute(
                    "SELECT alert_id FROM alerts WHERE unit = ?", (known.unit,)
                )
            }
            track.tests = {
                i
                for (i,) in self._db.execute(
                    "SELECT test_id FROM test_presses WHERE unit = ?", (known.unit,)
                )
            }
        self._tracks[known.unit] = track
        self._extend(track)
        # Identifiers verified before a restart are replays, not strangers.
        heard = track.last_seen if track.last_seen is not None else float("-inf")
        for counter in range(max(track.hwm - RECENT + 1, 0), track.hwm + 1):
            self._remember(track, rid(known.keys.id, counter), heard)

    def _depth(self, track: _Track) -> int:
        return self.window if track.supervised else self.deep_window

    def _extend(self, track: _Track) -> None:
        """Fill the look-ahead table up to hwm + depth."""
        last = min(track.hwm + self._depth(track), MAX_COUNTER)
        start = max(track.ahead, default=track.hwm) + 1
        for counter in range(max(start, track.hwm + 1), last + 1):
            rolling_id = rid(track.known.keys.id, counter)
            track.ahead[counter] = rolling_id
            self._table[rolling_id] = (track, counter)

    def _advance(self, track: _Track, counter: int, t: float) -> None:
        """Counter verified: forget identifiers at or below it, slide the window."""
        for old in [c for c in track.ahead if c <= counter]:
            rolling_id = track.ahead.pop(old)
            self._table.pop(rolling_id, None)
            if old == counter:
                self._remember(track, rolling_id, t)
        track.hwm = counter
        self._extend(track)

    def _remember(self, track: _Track, rolling_id: bytes, t: float) -> None:
        if len(track.recent) == track.recent.maxlen:
            self._recent.pop(track.recent[0], None)
        track.recent.append(rolling_id)
        self._recent[rolling_id] = t

    # -- frames ------------------------------------------------------------

    def feed(self, ad: bytes, t: float, rssi: int | None = None) -> list[dict[str, Any]]:
        """One advertising payload in; the events it makes (often none)."""
        self.last_alert = None
        self.last_test = None
        if len(ad) == len(ACK_AD_HEADER) + RID_LENGTH and ad.startswith(ACK_AD_HEADER):
            self.stats["acks_heard"] += 1  # a receiver's acknowledgement, not a frame
            return []
        try:
            rolling_id = split(ad)
        except FrameError as err:
            self.stats[f"rejected_{err.reason}"] += 1
            return []
        hit = self._table.get(rolling_id)
        if hit is None:
            verified_at = self._recent.get(rolling_id)
            if verified_at is None:
                self.stats["rejected_unknown"] += 1
            elif t - verified_at <= DUPLICATE_S:
                self.stats["duplicates"] += 1
            else:
                self.stats["rejected_replay"] += 1
            return []
        track, counter = hit
        try:
            frame = decode(track.known.keys.enc, counter, ad)
        except FrameError as err:
            self.stats[f"rejected_{err.reason}"] += 1
            return []
        self.stats["accepted"] += 1
        was_supervised = track.supervised
        track.last_seen = t
        track.supervised = True
        self._advance(track, counter, t)
        if not was_supervised:
            self._shrink(track)
        events = []
        if not was_supervised:
            events.append(self._event("supervision_restored", track, t))
        event = self._frame_event(track, frame, t, rssi, self._timing(track, frame.clock_s, t))
        if event is not None:
            events.append(event)
        self._commit(track, t, event)
        return events

    def _shrink(self, track: _Track) -> None:
        for old in [c for c in track.ahead if c > track.hwm + self.window]:
            self._table.pop(track.ahead.pop(old), None)

    @staticmethod
    def _timing(track: _Track, clock_s: int, t: float) -> tuple[int | None, bool, bool]:
        """(delay s, late, clock restarted) of a verified frame; delay None
        when it cannot be judged. Moves the anchor unless the frame is late."""
        anchor = track.anchor
        if anchor is None or clock_s < anchor[0]:
            # No anchor yet, or a clock behind it under a higher counter: the
            # unit's clock started again (power loss, a new cell).
            track.anchor = (clock_s, t)
            return None, False, anchor is not None
        elapsed = clock_s - anchor[0]
        delay = (t - anchor[1]) - elapsed
        late = delay > LATENCY_ALLOWANCE_S + CLOCK_DRIFT * elapsed
        if not late:
            track.anchor = (clock_s, t)
        return max(0, round(delay)), late, False

    def _frame_event(
        self,
        track: _Track,
        frame: Frame,
        t: float,
        rssi: int | None,
        timing: tuple[int | None, bool, bool],
    ) -> dict[str, Any] | None:
        delay_s, held_back, clock_restarted = timing
        if frame.kind in (Kind.ALERT, Kind.ALERT_RETRANSMISSION):
            self.last_alert = (track.known.unit, frame.alert_id)
            if frame.alert_id in track.alerts:
                self.stats["retransmissions"] += 1
                return None
            late = held_back or frame.alert_id < track.newest_alert
            track.alerts.add(frame.alert_id)
            track.newest_alert = max(track.newest_alert, frame.alert_id)
            event = self._event("alert", track, t, alert_id=frame.alert_id, late=late)
        elif frame.kind == Kind.TEST_PRESS:
            # The store's check (test mode): retried until acknowledged like
            # an alert, reported once per test id, and never as an alert.
            self.last_test = (track.known.unit, frame.alert_id)
            if frame.alert_id in track.tests:
                self.stats["test_retransmissions"] += 1
                return None
            track.tests.add(frame.alert_id)
            event = self._event("test_press", track, t, test_id=frame.alert_id, late=held_back)
        else:
            event = self._event(EVENT_NAMES[frame.kind], track, t)
        event.update(
            counter=frame.counter,
            attempt=frame.attempt,
            battery_pct=None if frame.battery_pct == BATTERY_UNKNOWN else frame.battery_pct,
            low_battery=bool(frame.flags & FLAG_LOW_BATTERY),
            fault=bool(frame.flags & FLAG_FAULT),
            below_floor=bool(frame.flags & FLAG_BELOW_FLOOR),
            delay_s=delay_s,
            clock_restarted=clock_restarted,
            rssi=rssi,
        )
        return event

    @staticmethod
    def _event(name: str, track: _Track, t: float, **fields: Any) -> dict[str, Any]:
        return {"event": name, "unit": track.known.unit, "t": round(t, 3), **fields}

    def ack_ad(self, unit: str, alert_id: int) -> bytes:
        """The advertising payload that acknowledges this unit's alert (or
        test press: its test id takes the alert id's place)."""
        return ack_ad(self._tracks[unit].known.keys.ack, alert_id)

    # -- supervision and persistence ----------------------------------------

    def check_supervision(self, t: float) -> list[dict[str, Any]]:
        """One "supervision_lost" event per unit silent for too long."""
        events = []
        for track in self._tracks.values():
            if not track.supervised or track.last_seen is None:
                continue
            silent = t - track.last_seen
            if silent > track.known.heartbeat_s * SUPERVISION_FACTOR:
                track.supervised = False
                self._extend(track)
                self._commit(track, t)
                events.append(self._event("supervision_lost", track, t, silent_s=round(silent)))
        return events

    def watch(self, units_started_at: float) -> None:
        """Start supervising units never heard from, as of this time."""
        for track in self._tracks.values():
            if track.last_seen is None:
                track.last_seen = units_started_at

    def _commit(self, track: _Track, t: float, event: dict[str, Any] | None = None) -> None:
        """Make the unit's state durable before any event about it leaves.
        A new alert goes to the storage itself (synchronous=FULL), taking
        all earlier commits with it, with its event, not yet handed over;
        a test press is recorded so that it is reported once, restarts or not."""
        new_alert = event if event is not None and event["event"] == "alert" else None
        if new_alert is not None:
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, 0)",
                (track.known.unit, new_alert["alert_id"], t, json.dumps(new_alert)),
            )
        elif event is not None and event["event"] == "test_press":
            self._db.execute(
                "INSERT OR IGNORE INTO test_presses VALUES (?, ?, ?)",
                (track.known.unit, event["test_id"], t),
            )
        anchor = track.anchor or (None, None)
        self._db.execute(
            "INSERT OR REPLACE INTO unit_state VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                track.known.unit,
                track.hwm,
                track.newest_alert,
                track.last_seen,
                int(track.supervised),
                *anchor,
            ),
        )
        self._db.commit()
        if new_alert is not None:
            self._db.execute("PRAGMA synchronous = NORMAL")

    def handed_over(self, event: dict[str, Any]) -> None:
        """An alert event is safe with whoever takes it on (the outbox, the
        screen): it need not be emitted again."""
        if event.get("event") != "alert":
            return
        self._db.execute(
            "UPDATE alerts SET handed_over = 1, event = NULL WHERE unit = ? AND alert_id = ?",
            (event["unit"], event["alert_id"]),
        )
        self._db.commit()

    def not_handed_over(self) -> list[dict[str, Any]]:
        """Alert events recorded as reported but never handed over (the
        outbox's disk was full, the output failed, the process was killed
        in between): to emit again, oldest first, marked `redelivered`."""
        rows = self._db.execute(
            "SELECT event FROM alerts WHERE handed_over = 0 AND event IS NOT NULL"
            " ORDER BY first_seen"
        )
        return [{**json.loads(event), "redelivered": True} for (event,) in rows]

    def close(self) -> None:
        self._db.close()


def ad_from_manufacturer_data(company_id: int, data: bytes) -> bytes:
    """Rebuild the AD structure from a scanner's manufacturer-data view.

    Scanning APIs (bleak, Android, iOS) split the first two payload bytes
    off as a company id; in these frames they are part of the identifier.
    """
    payload = struct.pack("<H", company_id) + data
    return bytes((len(payload) + 1, 0xFF)) + payload
