# Role: the air queue. One payload is on the air at a time (a new one would
# replace it), so frames go out one after another: alert bursts first, then
# retries, then the heartbeat; a new alert's burst does not wait for a
# routine frame to finish. It schedules the heartbeat and the cover
# sequences (an alert's timing with routine contents), chooses what a
# routine frame says (heartbeat, or low battery), takes each frame's counter
# from the sequencer, seals and advertises it, and hands the receiver's
# acknowledgements to the sequencer.
from amr import diag as diagnostics
from amr import frame
from amr.alert import COVER, cover_gap_ms, heartbeat_gap_ms
from amr.compat import const

_HEARTBEAT_ADVERTISE_MS = const(1000)
_LAST = const(0x10000)  # queue order of the heartbeat: after every alert attempt


class AirQueue:
    def __init__(self, chip, radio, sealer, alerts, gauge, log, cfg):
        self._chip = chip
        self._radio = radio
        self._sealer = sealer
        self._alerts = alerts
        self._gauge = gauge
        self._log = log
        self._heartbeat_ms = cfg["heartbeat_s"] * 1000
        self._cover_per_day = cfg["cover_per_day"]
        self.next_heartbeat = 0  # RTC ms
        self.next_cover = 0  # RTC ms; 0: cover traffic off
        self.paused = False  # service mode holds the radio: routine frames wait
        self._queue = []  # frames waiting for the air: (order, kind, alert id, ms)
        self._air_until = 0  # RTC ms when the frame on the air has had its time
        self._air_burst = False  # the frame on the air is a sequence's burst
        self._ack_ids = []  # pending alerts whose ack tags the radio looks for

    def resume(self, now, next_heartbeat, next_cover):
        """The schedules kept across deep sleep, or fresh ones. (The first
        heartbeat after a cold boot is one interval on: nothing was on the
        air at the boot, so that interval shows nothing.)"""
        self.next_heartbeat = next_heartbeat or now + self._heartbeat_ms
        self.next_cover = next_cover
        if not next_cover and self._cover_per_day:
            self.next_cover = now + cover_gap_ms(self._chip.random_u32(), self._cover_per_day)

    def poll(self, now):
        self._acknowledged()
        if not self.paused:
            self._schedule(now)
        self._air(now)

    def deadline(self):
        """The next time poll() has work (RTC ms), or None."""
        if self._queue:
            return self._air_until
        if self.paused:
            return None
        return self.wake_at()

    def wake_at(self):
        """When the radio next has work: a heartbeat, cover or alert frame."""
        wake_at = self.next_heartbeat
        if self.next_cover and self.next_cover < wake_at:
            wake_at = self.next_cover
        due = self._alerts.next_due()
        if due is not None and due < wake_at:
            wake_at = due
        return wake_at

    @property
    def waiting(self):
        """Frames queued for the air."""
        return bool(self._queue)

    def idle(self, now):
        """Nothing on the air or waiting for it."""
        return now >= self._air_until and not self._queue

    def stop(self):
        self._radio.stop()

    def _schedule(self, now):
        alerts = self._alerts
        if self.next_cover and now >= self.next_cover:
            alerts.cover(now)
            self.next_cover = now + cover_gap_ms(self._chip.random_u32(), self._cover_per_day)
        if alerts.busy:
            due = alerts.due(now, self._gauge.millivolts())
            for alert_id, attempt, span in due:
                if alert_id >= COVER:  # looks like an alert's frame, says heartbeat
                    kind, alert_id = self._routine_kind(), 0
                elif alerts.is_test(alert_id):  # the store's check: never an alert
                    kind = frame.TEST_PRESS
                elif attempt == 0:
                    kind = frame.ALERT
                else:
                    kind = frame.ALERT_RETRANSMISSION
                self._queue.append((attempt, kind, alert_id, span))
            if due:
                self._queue.sort()
            if self._gauge.below_floor():
                self._log.diag.error(diagnostics.E_BATTERY_FLOOR)
        if now >= self.next_heartbeat:
            self._queue.append((_LAST, self._routine_kind(), 0, _HEARTBEAT_ADVERTISE_MS))
            self.next_heartbeat = now + heartbeat_gap_ms(
                self._chip.random_u32(), self._heartbeat_ms
            )

    def _routine_kind(self):
        self._gauge.millivolts()
        return frame.LOW_BATTERY if self._gauge.low else frame.HEARTBEAT

    def _air(self, now):
        if not self._queue:
            return
        attempt, kind, alert_id, span = self._queue[0]
        # A burst (an alert's, a test press's or a cover sequence's: they
        # must look alike) does not wait for a heartbeat or a retry on the
        # air to finish, only for another burst.
        burst = attempt == 0
        if now < self._air_until and not (burst and not self._air_burst):
            return
        self._queue.pop(0)
        if kind in (frame.ALERT, frame.ALERT_RETRANSMISSION, frame.TEST_PRESS):
            what = "test press" if kind == frame.TEST_PRESS else "alert"
            self._log.say("%s %d attempt %d: advertising %d ms" % (what, alert_id, attempt, span))
        # The receiver is not listened to during a burst (radio.py says why).
        self._send(kind, alert_id, attempt if attempt < _LAST else 0, not burst)
        self._air_burst = burst
        self._air_until = now + span

    def _send(self, kind, alert_id, attempt, listen):
        gauge = self._gauge
        flags = 0
        pct = 255  # no reading this session
        if gauge.has_reading():
            if gauge.low:
                flags |= frame.FLAG_LOW_BATTERY
            if gauge.below_floor():
                flags |= frame.FLAG_BELOW_FLOOR
            pct = gauge.percent()
        counter = self._alerts.take_counter()
        # The RTC clock lets the receiver tell a frame that was held back.
        clock_s = self._chip.clock_ms() // 1000
        self._radio.advertise(
            self._sealer.seal(kind, counter, alert_id, attempt, pct, flags, clock_s), listen
        )
        self._log.diag.frames_sent += 1

    def _acknowledged(self):
        radio = self._radio
        while radio.acked:
            alert_id = radio.acked.pop()
            if self._alerts.acknowledge(alert_id):
                self._log.say("alert %d acknowledged by the receiver" % alert_id)
        pending = self._alerts.pending_ids
        if pending != self._ack_ids:
            self._ack_ids = pending
            radio.listen_for({self._sealer.ack_tag(a): a for a in pending})
