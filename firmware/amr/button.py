# Role: the button. Edges captured by the pin interrupt reach the press
# recogniser in order, with their own times; each gesture it recognises goes
# to the app. A contact closed longer than any gesture is stuck: a fault,
# recorded once an episode, after which the unit stops waiting for it to
# open and sleeps with the button armed to wake on release.
from amr import diag as diagnostics
from amr import hw, press, rtcmem
from amr.compat import const

# A contact closed this long is stuck (a hold has raised its alarm long
# before). Each stuck episode in a row halves the wait, down to just past a
# hold, so a contact that keeps sticking costs ever less awake time.
_STUCK_MS = const(10000)
_STUCK_MARGIN_MS = const(1000)


class Button:
    def __init__(self, chip, cfg, rtc, log, on_gesture):
        self._chip = chip
        self._hold = cfg["hold_ms"]
        self._rtc = rtc
        self._log = log
        self._on_gesture = on_gesture  # on_gesture(event, presses)
        self.rec = press.Recogniser(cfg)
        # The contact was stuck closed when the unit went to sleep ...
        self._stuck_before = bool(rtc.flags & rtcmem.STUCK)
        self._stuck_boot = False  # ... and still is at this boot
        self.stuck = False  # a stuck episode in this run: sleep waking on release

    def start(self, wake, up_at, pressed):
        """Open the first gesture window of this run, from the level at boot."""
        rec = self.rec
        if self._stuck_before:
            # Woken by the stuck contact letting go, or by the timer with it
            # still closed: either way not a press (reset() latches a closed
            # contact until it opens).
            self._stuck_boot = pressed
            rec.reset(up_at, pressed)
        elif wake == hw.BUTTON_WAKE:
            self._report(rec.woke(up_at, pressed))
        else:
            rec.reset(up_at, False)
            if pressed:  # a press that began while the timer's boot ran
                self._report(rec.edge(up_at, True))

    def poll(self, ticks):
        chip = self._chip
        edge = chip.next_edge()
        while edge is not None:
            self._report(self.rec.edge(edge[0], edge[1]))
            edge = chip.next_edge()
        self._report(self.rec.poll(ticks))

    def deadline(self):
        """The recogniser's next time check (ticks), or None."""
        return self.rec.deadline()

    def quiet(self, ticks):
        """No gesture open, or only a stuck contact left to wait for."""
        return not self.rec.open or self._stuck_contact(ticks)

    def end(self):
        """The run is over: a run without a stuck contact ends the streak."""
        if not self.stuck and not self._stuck_before:
            self._rtc.stuck_streak = 0

    def _report(self, event):
        if event is not None:
            self._on_gesture(event, self.rec.gesture_presses)

    def _stuck_contact(self, ticks):
        since = self.rec.held_since()
        if since is None:
            self._stuck_boot = self.stuck = False
            return False
        if self._stuck_boot:
            self.stuck = True
            return True
        wait = max(self._hold + _STUCK_MARGIN_MS, _STUCK_MS >> self._rtc.stuck_streak)
        if ticks - since < wait:
            return False
        if not self.stuck:
            self.stuck = True
            self._rtc.stuck_streak += 1
            self._log.fault(
                diagnostics.E_STUCK_BUTTON, "stuck button: closed for %d ms" % (ticks - since)
            )
        return True
