# Alert sequencing: which alert frames go out when.
#
# An alarm first reserves a fresh alert id through Counters.raise_alert(),
# which persists it; only then is it scheduled. Each alert then goes out as a
# burst (burst_ms of fast advertising), followed by retries with doubling
# back-off from retry_first_s up to retry_max_s (never more than 60 s apart),
# until the receiver acknowledges it or the battery falls below its floor.
#
# Why this shape (docs/protocol.md section 6.2, tools/bench_air.py): a phone
# listens one window in every scan interval, at a phase the unit cannot
# know. A burst at least one interval plus one window long holds a whole
# window whatever its phase (burst_ms default: a phone scanning in the
# background, 0.5 s in every 5 s; not longer, for the coin cell's end of
# life). The first retry comes soon and exactly on time: it is there to hear
# the acknowledgement. From the second retry on, each
# back-off is shortened by a random part of up to a quarter of it, so
# retries fall at phases unrelated to the phone's period (a fixed gap that
# is close to a multiple of it would miss the same windows again and again),
# and the longest gap is still the cap.
# A second alarm during an alert is a new alert with its own id and burst;
# the first keeps its schedule. Pure logic: times are ms on the RTC clock,
# which keeps running through deep sleep.
#
# Cover traffic: a cover sequence has an alert's timing (burst, then the same
# back-off) and stops after a few retries, as an acknowledged alert does, or
# now and then after many, as an alert acknowledged late; its frames are
# heartbeats, so only the receiver can tell it from an alert.
import math

from amr import rtcmem
from amr.compat import const

RETRY_ADVERTISE_MS = const(1000)  # how long one retry advertises
# Retries due this soon go out with one that is due now: one wake, one radio
# session, instead of a wake per alert.
_BATCH_MS = const(10000)
_MAX_BACKOFF_MS = const(60000)
_JITTER_FROM = const(2)  # the first attempt whose back-off is jittered
_JITTER_SHIFT = const(2)  # jitter: up to back-off >> 2 taken off
_HEARTBEAT_SPREAD = const(5)  # heartbeat intervals vary by up to 1/5 either way
COVER = const(0xFFFFFF00)  # ids from here up are cover sequences, never alert ids
# How many retries a cover sequence makes: as an acknowledged alert, one (a
# receiver that heard the burst answers at the first retry), now and then
# two (one that missed it). An alert with one retry must not be told apart
# by its length: mostly one, as alerts are ...
_COVER_LENGTHS = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2)
# ... and one in COVER_TAIL_IN goes on as an alert nobody acknowledges does,
# for a number of retries drawn uniformly up to what such an alert makes in
# its first COVER_TAIL_MS (cover_tail), so that a long sequence tells little
# either. Only an alert unacknowledged for longer stands out.
COVER_TAIL_IN = const(16)
COVER_TAIL_MS = const(1800000)


def heartbeat_gap_ms(random_u32, heartbeat_ms):
    """Time to the next heartbeat: uniform over heartbeat_ms less or more a
    fifth, so no interval marks the unit and the mean is heartbeat_ms (the
    rate the power model counts). The longest, 1.2 intervals, keeps a unit
    whose one heartbeat is lost (2.4 intervals of silence) inside the
    receiver's supervision (2.5 intervals)."""
    spread = heartbeat_ms // _HEARTBEAT_SPREAD
    return heartbeat_ms - spread + random_u32 % (2 * spread + 1)


def cover_gap_ms(random_u32, per_day):
    """Time to the next cover sequence: exponential, per_day a day on average."""
    u = (random_u32 + 1) / 4294967297  # in (0, 1)
    return int(-math.log(u) * 86400000 / per_day)


def cover_tail(cfg):
    """(fewest, most) retries of a cover sequence's tail: from one past the
    longest of _COVER_LENGTHS to as many as an unacknowledged alert makes in
    its first COVER_TAIL_MS at the mean back-off (36 at the defaults)."""
    first = cfg["retry_first_s"] * 1000
    cap = min(cfg["retry_max_s"] * 1000, _MAX_BACKOFF_MS)
    fewest = max(_COVER_LENGTHS) + 1
    t = cfg["burst_ms"]
    n = 0  # retries so far
    while True:
        wait = min(first << min(n, 16), cap)
        if n + 1 >= _JITTER_FROM:
            wait -= (wait >> _JITTER_SHIFT) // 2  # the jitter's mean
        t += wait
        if t > COVER_TAIL_MS:
            return fewest, max(n, fewest)
        n += 1
        t += RETRY_ADVERTISE_MS


class Sequencer:
    def __init__(self, cfg, counters, random_u32):
        # The back-off jitter's source: the chip's hardware RNG (hw.Chip).
        self._random = random_u32
        self._burst = cfg["burst_ms"]
        self._first = cfg["retry_first_s"] * 1000
        self._cap = min(cfg["retry_max_s"] * 1000, _MAX_BACKOFF_MS)
        self._floor = cfg["battery_floor_mv"]
        self._counters = counters
        self._tail = cover_tail(cfg)
        # id -> [next due ms, attempt, last attempt]; attempt 0 is the burst,
        # last 0 means until acknowledged (alerts), else a cover sequence's end
        self._plan = {}

    def restore(self, now, saved=b""):
        """Rebuild the schedule of the persisted pending alerts.

        `saved` is the RTC snapshot from before deep sleep; an alert it does
        not cover (after a power loss) is retried at once.
        """
        known = {}
        for alert_id, due, attempt, last in rtcmem.plan_entries(saved):
            known[alert_id] = [due, attempt, last]
            if alert_id >= COVER:
                self._plan[alert_id] = known[alert_id]
        for alert_id in self._counters.state.pending:
            self._plan[alert_id] = known.get(alert_id, [now, 1, 0])

    def snapshot(self):
        return rtcmem.pack_plan(self._plan)

    def alarm(self, now, test=False):
        """A recognised alarm: persist a new alert, then schedule its burst.
        With test (the unit is in test mode), a test press: the same
        schedule and acknowledgement, but its frames say TEST_PRESS."""
        counters = self._counters
        alert_id = counters.raise_alert(test)
        if counters.evicted is not None:
            del self._plan[counters.evicted]
        self._plan[alert_id] = [now, 0, 0]
        return alert_id

    def cover(self, now):
        """Start a cover sequence now; its length is drawn from the RNG."""
        rand = self._random()
        pick = rand // COVER_TAIL_IN
        if rand % COVER_TAIL_IN:
            last = _COVER_LENGTHS[pick % len(_COVER_LENGTHS)]
        else:
            fewest, most = self._tail
            last = fewest + pick % (most - fewest + 1)
        cover_id = COVER
        while cover_id in self._plan:
            cover_id += 1
        self._plan[cover_id] = [now, 0, last]

    def acknowledge(self, alert_id):
        if self._counters.acknowledge(alert_id):
            del self._plan[alert_id]
            return True
        return False

    def is_test(self, alert_id):
        """Is this pending id a test press (persisted as one)?"""
        return alert_id in self._counters.state.tests

    @property
    def pending(self):
        """Alerts not yet acknowledged (cover sequences do not count)."""
        return len(self._counters.state.pending)

    # The sequencer is the only owner of the counters: every frame's counter,
    # and what the app keeps of them, goes through here.

    def take_counter(self):
        """A never-used frame counter for the next frame on the air."""
        return self._counters.take()

    @property
    def pending_ids(self):
        """Ids of the alerts not yet acknowledged, oldest first."""
        return self._counters.state.pending

    @property
    def evicted(self):
        """The alert the last alarm pushed out of the pending list, or None."""
        return self._counters.evicted

    @property
    def next_counter(self):
        """The next counter, to keep in RTC memory across deep sleep."""
        return self._counters.next

    @property
    def writes(self):
        """Saves of the counter state in this run (flash wear)."""
        return self._counters.writes

    @property
    def unsaved(self):
        """Alerts raised while the flash refused writes, kept in RAM only."""
        return self._counters.unsaved

    @property
    def write_fault(self):
        """Why the flash last refused a write (a StoreFault), or None."""
        return self._counters.write_fault

    @property
    def busy(self):
        """Alerts or cover sequences still scheduled."""
        return len(self._plan)

    def due(self, now, battery_mv):
        """Transmissions due at `now`: a list of (id, attempt, advertise ms).

        An id of COVER or above is a cover sequence's frame. Below the battery
        floor nothing is sent; the alerts stay persisted and resume when the
        cell recovers or is replaced.
        """
        out: list = []
        if battery_mv < self._floor:
            # Look again after the longest back-off, not at once: a wake
            # every moment would drain the very cell the floor is sparing.
            # Cover sequences are dropped: they would keep that wake going
            # for nothing, since below the floor nothing is sent anyway.
            for alert_id in [i for i in self._plan if i >= COVER]:
                del self._plan[alert_id]
            for entry in self._plan.values():
                if entry[0] <= now:
                    entry[0] = now + self._cap
            return out
        nearest = self.next_due()
        if nearest is None or nearest > now:
            return out
        done = []
        for alert_id in self._plan:
            entry = self._plan[alert_id]
            due, attempt, last = entry
            if due > now and (attempt == 0 or due - now > _BATCH_MS):
                continue
            span = self._burst if attempt == 0 else RETRY_ADVERTISE_MS
            out.append((alert_id, attempt, span))
            entry[0] = now + span + self.wait(attempt + 1)
            entry[1] = attempt + 1
            if last and attempt >= last:
                done.append(alert_id)
        for cover_id in done:
            del self._plan[cover_id]
        return out

    def backoff(self, attempt):
        """Nominal quiet time before retry `attempt` (>= 1): doubling, capped."""
        wait = self._first << min(attempt - 1, 16)
        return wait if wait < self._cap else self._cap

    def wait(self, attempt):
        """Quiet time before retry `attempt`: the back-off, less a random
        part of up to a quarter of it from the second retry on."""
        wait = self.backoff(attempt)
        if attempt < _JITTER_FROM:
            return wait
        return wait - self._random() % ((wait >> _JITTER_SHIFT) + 1)

    def next_due(self):
        """The earliest time an alert needs the radio, or None."""
        best = None
        for alert_id in self._plan:
            due = self._plan[alert_id][0]
            if best is None or due < best:
                best = due
        return best
