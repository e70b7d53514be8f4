# Press recognition: raw (time, level) samples of the button contact become
# debounced presses, and presses become gestures.
#
# Alarm gestures (the alarm always wins):
#   - a hold of at least hold_ms raises the alarm at that threshold, while held;
#   - multi_count presses whose starts lie within multi_window_ms.
# Service gesture: service_pairs double taps separated by pauses longer than
# multi_window_ms. By construction (config validation) no multi_count presses
# of it fit in one alarm window and none of its presses is a hold, so a
# pattern that contains an alarm raises the alarm and never opens service mode.
# It is declared only once a full alarm window has passed after its last
# press with nothing more, so a third tap turns it into an alarm.
#
# Pure logic: times are ms from the start of the window (the wake, when the
# press woke the chip), levels are True for "contact closed".
from amr.compat import const

ALARM_HOLD = const(1)
ALARM_MULTI = const(2)
SERVICE = const(3)
REJECTED = const(4)

# Why a gesture window closed without a gesture (Recogniser.reason).
NOISE = const(1)  # contact activity, but no press lasted min_press_ms
TOO_FEW = const(2)  # presses, but not an alarm or service pattern

_UNSET = const(-1)
# A bounce burst is dated from its first edge, so that a short tap with a
# long make-bounce still counts; the cap stops chatter from back-dating a
# press by more than a bounce can last.
_MAX_BOUNCE_MS = const(50)


class Recogniser:
    def __init__(self, cfg):
        self._hold = cfg["hold_ms"]
        self._count = cfg["multi_count"]
        self._window = cfg["multi_window_ms"]
        self._press_settle = cfg["press_settle_ms"]
        self._release_settle = cfg["release_settle_ms"]
        self._min_press = cfg["min_press_ms"]
        self._pairs = cfg["service_pairs"]
        self._pair = cfg["service_pair_ms"]
        self._pause_min = cfg["service_pause_min_ms"]
        self._pause_max = cfg["service_pause_max_ms"]
        # Start times of counted presses in this window; the service pattern
        # needs 2 * pairs of them, the alarm only the last multi_count.
        self._starts = [0] * max(self._count, 2 * self._pairs)
        # Presses of the gesture the last event ended, set where each event
        # is decided: a press that opens the next window in the same call
        # must not hide them.
        self.gesture_presses = 0
        self.reset(0, False)

    def reset(self, t, pressed):
        """Open a new gesture window at t with the contact in state `pressed`.

        A contact already closed is not a press whose start was seen (a
        stuck one, say): the window waits for it to open, as after an alarm.
        """
        self._raw = pressed
        self._raw_since = t
        self._first = _UNSET  # first edge of a transition not yet settled
        self._down = pressed  # debounced state
        self._down_since = t
        self._counted = False  # current press already counted
        self._n = 0
        self._last_start = _UNSET
        self._activity = False
        self._latched = pressed  # after an alarm: wait for release
        self._open = True
        self.presses = 0
        self.reason = 0

    def woke(self, boot_ms, pressed):
        """Open the window for a press that woke the chip at t=0.

        Edges during boot are not seen: the press is dated from the wake and
        the level read at boot (t=boot_ms) says whether it is still held. A
        press already released by then still counts as one press.
        """
        self.reset(0, True)
        self._latched = False
        self._activity = True
        if pressed:
            self._raw = True
            return self.poll(boot_ms)
        self._count_press(0)
        # The release may have come just before the boot and still be
        # bouncing: the press stays down, open since the boot and not yet
        # settled, as the awake path holds a release, so a glitch of the
        # bounce is not a second press. (A second press that starts within
        # release_settle_ms of the boot is merged too, as the awake path
        # merges one that close: only a boot of more than about 140 ms can
        # put a deliberate tap there.)
        self._counted = True
        self._raw = False
        self._raw_since = boot_ms
        self._first = boot_ms
        return self._check_multi()

    def held_since(self):
        """When the contact closed (debounced), or None while it is open."""
        return self._down_since if self._down else None

    @property
    def open(self):
        """False once the window has closed; a closed window ignores input."""
        return self._open

    def edge(self, t, pressed):
        """Feed a raw contact sample; returns a gesture code or None.

        A press after the window closed opens a new one.
        """
        # The edge is recorded even when the time check closes a window or
        # raises an alarm at this very moment: it may start the next gesture,
        # or be the release an alarm waits for.
        event = self.poll(t)
        if not self._open:
            if not pressed:
                return event
            self.reset(t, False)
        if pressed == self._raw:
            return event
        if pressed != self._down:
            # Leaving the settled state: a new transition, unless the contact
            # came back only briefly within the same bounce burst.
            back = self._release_settle if pressed else self._press_settle
            if self._first == _UNSET or t - self._raw_since >= back:
                self._first = t
        self._raw = pressed
        self._raw_since = t
        self._activity = True
        return event

    def poll(self, t):
        """Advance time to t; returns a gesture code or None."""
        if not self._open:
            return None
        if self._down and not self._latched:
            event = self._held(t)
            if event is not None:
                return event
        if self._raw != self._down:
            settle = self._press_settle if self._raw else self._release_settle
            if t - self._raw_since >= settle:
                self._down = self._raw
                self._down_since = self._transition_start()
                self._first = _UNSET
                self._counted = False
                if self._latched and not self._down:
                    self.reset(t, False)
                elif self._down and not self._latched:
                    event = self._held(t)
                    if event is not None:
                        return event
        if self._latched:
            return None
        return self._maybe_close(t)

    def deadline(self):
        """The next time poll() must run even if no edge comes, or None."""
        if not self._open:
            return None
        if self._raw != self._down:
            settle = self._press_settle if self._raw else self._release_settle
            return self._raw_since + settle
        if self._latched:
            return None
        if self._down:
            if not self._counted:
                return self._down_since + self._min_press
            return self._down_since + self._hold
        return self._close_time()

    # -- internals -------------------------------------------------------

    def _held(self, t):
        # A contact that opened but has not yet settled open still counts as
        # held up to the moment it opened: a glitch does not end a hold.
        until = t if self._raw else self._transition_start()
        held = until - self._down_since
        if not self._counted and held >= self._min_press:
            # Counted first, so that a hold seen late (a long boot) is a press too.
            self._counted = True
            self._count_press(self._down_since)
            event = self._check_multi()
            if event is not None:
                return event
        if held >= self._hold:
            self._latched = True
            self.gesture_presses = self.presses
            return ALARM_HOLD
        return None

    def _transition_start(self):
        return max(self._first, self._raw_since - _MAX_BOUNCE_MS)

    def _count_press(self, start):
        starts = self._starts
        if self._n == len(starts):
            starts[:-1] = starts[1:]
            self._n -= 1
        starts[self._n] = start
        self._n += 1
        self.presses += 1
        self._last_start = start

    def _check_multi(self):
        n = self._n
        if n >= self._count and self._starts[n - 1] - self._starts[n - self._count] <= self._window:
            self._latched = True
            self.gesture_presses = self.presses
            return ALARM_MULTI
        return None

    def _service_progress(self):
        """Pairs completed by the counted presses, or -1 if the pattern broke."""
        s = self._starts
        n = self._n
        # Only the most recent presses are kept; a pattern needs all of them.
        if self.presses != n:
            return -1
        for i in range(1, n):
            gap = s[i] - s[i - 1]
            if i % 2:
                if gap > self._pair:
                    return -1
            elif gap < self._pause_min or gap > self._pause_max:
                return -1
        return n // 2

    def _close_time(self):
        if self._last_start == _UNSET:
            # Only noise so far: close once the contact has been quiet long
            # enough for any press to have been counted.
            return self._raw_since + self._release_settle + self._min_press
        # Between the pairs of a service pattern, wait for the next pair.
        if self._n % 2 == 0 and 0 <= self._service_progress() < self._pairs:
            return self._last_start + self._pause_max
        return self._last_start + self._window

    def _maybe_close(self, t):
        if self._down or self._raw or t < self._close_time():
            return None
        self._open = False
        if not self._activity:
            return None
        self.gesture_presses = self.presses
        if self._service_progress() == self._pairs and self._n == 2 * self._pairs:
            return SERVICE
        self.reason = TOO_FEW if self.presses else NOISE
        return REJECTED
