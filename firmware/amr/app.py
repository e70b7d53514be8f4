# The application: one run per wake. Every wake from deep sleep is a reboot;
# this module reads why it woke, does what that wake is for, and goes back to
# deep sleep with the next wake chosen by the logic.
#   button -> recognise the gesture (staying awake for its whole window) -> alert
#   timer  -> heartbeat and alert retries
#   cold boot (power-on, reset) -> resume pending alerts, schedule the heartbeat
# A corrupt or missing config or state is a visible fault: the unit records
# the reason, sends nothing, and waits to be serviced. It never runs on
# defaults.
import json

from amr import battery, board, commands, frame, hw, press, records, rtcmem
from amr import diag as diagnostics
from amr.alert import COVER, Sequencer, cover_gap_ms
from amr.bonds import Bonds
from amr.compat import const
from amr.config import decode_config
from amr.contract import PWRON_RESET
from amr.frame import KEYS_LENGTH, Sealer, service_ad
from amr.gatt import ServiceLink
from amr.nvs import record_store
from amr.radio import Radio
from amr.state import Counters, decode_state
from amr.store import StoreFault
from amr.version import VERSION

_FAULT_SLEEP_MS = const(3600000)
_HEARTBEAT_ADVERTISE_MS = const(1000)
# Service mode stays open this long for a host to connect, a little while
# after the last host leaves (for the next command), and never longer than
# the cap, so a stray gesture cannot keep the radio up and drain the cell.
_SERVICE_WAIT_MS = const(60000)
_SERVICE_LINGER_MS = const(10000)
_SERVICE_MAX_MS = const(300000)
# The battery level is refreshed this often, so a technician sees it move
# (the divider's 17 ms are nothing beside the radio's current meanwhile).
_SERVICE_BATTERY_MS = const(5000)
_SERVICE_PAIR_MS = const(30000)  # a host has this long to pair with the passkey
_SERVICE_REFUSALS = const(3)  # unauthenticated hosts before service mode closes
# After a brownout the cell needs rest before the radio draws on it again
# (a coin cell's voltage recovers over tens of seconds after a burst).
_BROWNOUT_REST_MS = const(60000)
_LAST = const(0x10000)  # queue order of the heartbeat: after every alert attempt
# A contact closed this long is stuck (a hold has raised its alarm long
# before): the unit sleeps and wakes when it lets go, instead of staying
# awake. Each stuck episode in a row halves the wait, down to just past a
# hold, so a contact that keeps sticking costs ever less awake time.
_STUCK_MS = const(10000)
_STUCK_MARGIN_MS = const(1000)

_GESTURE_NAMES = {
    press.ALARM_HOLD: "alarm (hold)",
    press.ALARM_MULTI: "alarm (presses)",
    press.SERVICE: "service gesture",
    press.REJECTED: "rejected",
}


def log(chip, message):
    print("amr: [%d ms] %s" % (chip.ticks(), message))


class App:
    def __init__(self, chip, radio):
        self.chip = chip
        self.radio = radio
        saved = rtcmem.unpack(chip.rtc_memory())
        self.diag = diagnostics.load(saved[0] if saved else None)
        if not self.diag.restored:
            log(chip, "diagnostics start afresh (RTC memory lost: power-on)")
        cause = chip.reset_cause()
        # The ESP32 port reports a brownout as a power-on reset; RTC memory
        # that still holds our record means power never fully went away.
        self.brownout = cause == PWRON_RESET and self.diag.restored
        self.diag.count_reset(cause, brownout=self.brownout)
        self.rtc = rtcmem.decode_app(saved[1] if saved else b"")
        # The contact was stuck closed when the unit went to sleep.
        self._stuck_before = bool(self.rtc.flags & rtcmem.STUCK)
        self._stuck_boot = False  # ... and still is at this boot
        self._stuck = False  # a stuck episode was recorded in this run
        self.next_heartbeat = 0
        self.next_cover = 0
        self._ack_ids = []  # pending alerts whose ack tags the radio looks for
        self._queue = []  # frames waiting for the air: (order, kind, alert id, ms)
        self._air_until = 0  # RTC ms when the frame on the air has had its time
        self._air_kind = 0  # kind of the frame on the air
        self._mv = None
        self._low = False
        self._service = None  # the ServiceLink while service mode is open
        self._service_until = 0  # RTC ms when it closes unless a host is there
        self._service_cap = 0
        self._service_battery_at = 0

    # -- boot --------------------------------------------------------------

    def load(self, cfg):
        """Counter state from flash and schedules from RTC memory."""
        now = self.chip.clock_ms()
        store = record_store(records.STATE)
        state = decode_state(store.load())
        self.diag.store_repairs += store.damaged
        rtc = self.rtc
        resume_at = rtc.next_counter if rtc.flags & rtcmem.SCHEDULED else None
        self.next_heartbeat, self.next_cover = rtc.next_heartbeat, rtc.next_cover
        # The RTC copy of the next counter is valid for this boot only: were
        # this run reset before it sleeps, the stale value would reuse counters.
        rtc.flags &= ~rtcmem.SCHEDULED
        self._keep()
        self.cfg = cfg
        self.counters = Counters(store, state, resume_at)
        self.alerts = Sequencer(cfg, self.counters)
        self.alerts.restore(now, rtc.snapshot)
        if self.next_heartbeat == 0:
            self.next_heartbeat = now + cfg["heartbeat_s"] * 1000
        if self.next_cover == 0 and cfg["cover_per_day"]:
            self.next_cover = now + cover_gap_ms(self.chip.random_u32(), cfg["cover_per_day"])

    def _keep(self):
        """Diagnostics and the app record into RTC memory."""
        self.chip.keep(rtcmem.pack(self.diag.encode(), self.rtc.encode()))

    # -- one wake ----------------------------------------------------------

    def run(self):
        chip = self.chip
        # Edges are captured from the first moment, and the level read, before
        # the flash reads below: no edge of a gesture is lost to them.
        chip.listen()
        up_at, pressed = chip.ticks(), chip.pressed()
        chip.watch()  # from here on a hang resets the chip, and pending alerts resume
        wake = chip.wake()
        log(chip, "boot: reset cause %d, wake %s" % (chip.reset_cause(), _WAKES[wake]))
        try:
            cfg = decode_config(record_store(records.CONFIG).load())
        except StoreFault as fault:
            self.fault(diagnostics.E_CONFIG, fault)
            return
        try:
            keys = record_store(records.KEYS).load()
            if len(keys) != KEYS_LENGTH:
                raise StoreFault("keys length", "key record has %d bytes" % len(keys))
        except StoreFault as fault:
            self.fault(diagnostics.E_KEYS, fault)
            return
        self.sealer = Sealer(keys)
        try:
            self.load(cfg)
        except StoreFault as fault:
            self.fault(diagnostics.E_STATE, fault)
            return
        if self.brownout:
            # Alerts stay pending; they go out once the cell has recovered.
            log(chip, "brownout: resting the cell before the radio draws again")
            self.sleep(_BROWNOUT_REST_MS)
            return
        rec = press.Recogniser(self.cfg)
        if self._stuck_before:
            # Woken by the stuck contact letting go, or by the timer with it
            # still closed: either way not a press (reset() latches a closed
            # contact until it opens).
            self._stuck_boot = pressed
            rec.reset(up_at, pressed)
        elif wake == hw.BUTTON_WAKE:
            self._gesture(rec.woke(up_at, pressed), rec)
        else:
            rec.reset(up_at, False)
            if pressed:  # a press that began while the timer's boot ran
                self._gesture(rec.edge(up_at, True), rec)
        self._awake(rec)
        if not self._stuck and not self._stuck_before:
            self.rtc.stuck_streak = 0
        self.sleep(on_release=self._stuck)

    def _awake(self, rec):
        """Stay up while a gesture is open or the radio has work."""
        chip = self.chip
        while True:
            chip.feed()
            edge = chip.next_edge()
            while edge is not None:
                self._gesture(rec.edge(edge[0], edge[1]), rec)
                edge = chip.next_edge()
            self._gesture(rec.poll(chip.ticks()), rec)
            self._acknowledged()
            now = chip.clock_ms()
            self._schedule(now)
            self._air(now)
            if self._service is not None:
                self._serve(self._service, now)
            if (
                (not rec.open or self._stuck_contact(rec))
                and now >= self._air_until
                and not self._queue
                and self._service is None
            ):
                break
            chip.idle(hw.IDLE_SLICE_MS)
        self.radio.stop()

    def _stuck_contact(self, rec):
        """True once the contact has been closed longer than any gesture: a
        stuck-button fault, recorded once an episode."""
        since = rec.held_since()
        if since is None:
            self._stuck_boot = self._stuck = False
            return False
        if self._stuck_boot:
            self._stuck = True
            return True
        wait = max(self.cfg["hold_ms"] + _STUCK_MARGIN_MS, _STUCK_MS >> self.rtc.stuck_streak)
        if self.chip.ticks() - since < wait:
            return False
        if not self._stuck:
            self._stuck = True
            self.rtc.stuck_streak += 1
            self.diag.error(diagnostics.E_STUCK_BUTTON)
            log(self.chip, "FAULT stuck button: closed for %d ms" % (self.chip.ticks() - since))
        return True

    def _schedule(self, now):
        """Queue the frames due now: alert bursts first, then retries, then
        the heartbeat. One payload is on the air at a time (a new one would
        replace it), so they go out one after another."""
        if self._service is not None:
            return  # one radio: routine frames wait until service mode closes
        if self.next_cover and now >= self.next_cover:
            rand = self.chip.random_u32()
            self.alerts.cover(now, rand)
            self.next_cover = now + cover_gap_ms(rand >> 8, self.cfg["cover_per_day"])
        if self.alerts.busy:
            due = self.alerts.due(now, self._battery())
            for alert_id, attempt, span in due:
                if alert_id >= COVER:  # looks like an alert's frame, says heartbeat
                    kind, alert_id = self._routine_kind(), 0
                elif attempt == 0:
                    kind = frame.ALERT
                else:
                    kind = frame.ALERT_RETRANSMISSION
                self._queue.append((attempt, kind, alert_id, span))
            if due:
                self._queue.sort()
            if self._mv < self.cfg["battery_floor_mv"]:
                self.diag.error(diagnostics.E_BATTERY_FLOOR)
        if now >= self.next_heartbeat:
            self._battery()
            self._queue.append((_LAST, self._routine_kind(), 0, _HEARTBEAT_ADVERTISE_MS))
            self.next_heartbeat = now + self.cfg["heartbeat_s"] * 1000

    def _routine_kind(self):
        self._battery()
        return frame.LOW_BATTERY if self._low else frame.HEARTBEAT

    def _air(self, now):
        """Put the next queued frame on the air once the current one is done;
        a new alert's burst does not wait for a routine frame to finish."""
        if not self._queue:
            return
        attempt, kind, alert_id, span = self._queue[0]
        burst = kind == frame.ALERT
        if now < self._air_until and not (burst and self._air_kind != frame.ALERT):
            return
        self._queue.pop(0)
        if burst or kind == frame.ALERT_RETRANSMISSION:
            log(self.chip, "alert %d attempt %d: advertising %d ms" % (alert_id, attempt, span))
        self._send(kind, alert_id, attempt if attempt < _LAST else 0)
        self._air_kind = kind
        self._air_until = now + span

    def _acknowledged(self):
        radio = self.radio
        while radio.acked:
            alert_id = radio.acked.pop()
            if self.alerts.acknowledge(alert_id):
                log(self.chip, "alert %d acknowledged by the receiver" % alert_id)
        pending = self.counters.state.pending
        if pending != self._ack_ids:
            self._ack_ids = pending
            radio.listen_for({self.sealer.ack_tag(a): a for a in pending})

    # -- service mode ------------------------------------------------------

    def _service_open(self):
        if self._service is not None:
            return
        if self._queue or self.alerts.busy:
            # One radio: alerts come first, service mode waits for a quiet unit.
            log(self.chip, "service mode refused: alerts are on the air")
            return
        self.radio.stop()
        bonds = Bonds(record_store(records.BONDS))
        if bonds.damaged:
            log(self.chip, "bond table damaged: hosts must pair again")
        info = ("AMR", board.NAME, VERSION, board.CHIP)
        nonce = self.chip.random_u32()
        link = ServiceLink(self.sealer.passkey(nonce), bonds, info)
        self._mv = None  # a fresh reading for the session
        link.start(service_ad(nonce, self.sealer.service_token(nonce)), self._battery_pct())
        now = self.chip.clock_ms()
        self._service = link
        self._service_until = now + _SERVICE_WAIT_MS
        self._service_cap = now + _SERVICE_MAX_MS
        self._service_battery_at = now + _SERVICE_BATTERY_MS
        log(self.chip, "service mode: connectable for %d s" % (_SERVICE_WAIT_MS // 1000))

    def _serve(self, link, now):
        while link.notes:
            log(self.chip, "service: " + link.notes.pop(0))
        while link.requests:
            conn, name = link.requests.pop(0)
            link.reply(conn, json.dumps(self._command(name)).encode())
        link.drop_idle(self.chip.ticks(), _SERVICE_PAIR_MS)
        # A host may come and go between two looks (a quick read): count it too.
        if link.trusted or link.active:
            self._service_until = now + _SERVICE_LINGER_MS
            link.active = False
        if now >= self._service_battery_at:
            self._mv = None
            link.battery(self._battery_pct())
            self._service_battery_at = now + _SERVICE_BATTERY_MS
        if link.refused >= _SERVICE_REFUSALS:
            # Each failed passkey attempt tells a guesser a little; stop them.
            self._service_close(link, "%d hosts failed to pair" % link.refused)
        elif now >= self._service_until or now >= self._service_cap:
            self._service_close(link, "no host" if not link.served else "done")

    def _command(self, name):
        """A service command from an authenticated host, run as on the wired link."""
        try:
            name = name.decode()
        except UnicodeError:
            return {"error": "a command is a name in ASCII"}
        log(self.chip, "service command: %s" % name)
        ctx = commands.Context(self.chip, self.diag, self._keep_diag, True)
        return commands.run(name, ctx)

    def _keep_diag(self, diag):
        self.diag = diag
        self._keep()

    def _service_close(self, link, why):
        link.stop()
        self._service = None
        log(self.chip, "service mode closed (%s)" % why)

    def _battery_pct(self):
        return battery.percent(self._battery())

    def _send(self, kind, alert_id, attempt):
        flags = 0
        if self._low:
            flags |= frame.FLAG_LOW_BATTERY
        if self._mv is not None and self._mv < self.cfg["battery_floor_mv"]:
            flags |= frame.FLAG_BELOW_FLOOR
        pct = battery.percent(self._mv) if self._mv is not None else 255
        counter = self.counters.take()
        self.radio.advertise(self.sealer.seal(kind, counter, alert_id, attempt, pct, flags))
        self.diag.frames_sent += 1

    def _gesture(self, event, rec):
        if event is None:
            return
        # Each event ends a gesture (an alarm latches until release).
        self.diag.presses += rec.gesture_presses
        log(
            self.chip, "gesture: %s after %d presses" % (_GESTURE_NAMES[event], rec.gesture_presses)
        )
        if event in (press.ALARM_HOLD, press.ALARM_MULTI):
            if self._service is not None:
                self._service_close(self._service, "alarm")  # the alarm wins the radio
            alert_id = self.alerts.alarm(self.chip.clock_ms())
            self.diag.alerts += 1
            # Into RTC memory now, so a brownout at the first frame keeps the count.
            self._keep()
            log(self.chip, "alert %d reserved and persisted" % alert_id)
            if self.counters.evicted is not None:
                log(
                    self.chip,
                    "alert %d no longer retried: too many pending" % self.counters.evicted,
                )
        elif event == press.REJECTED:
            self.diag.gestures_rejected += 1
        elif event == press.SERVICE:
            self._service_open()

    def _battery(self):
        if self._mv is None:
            self._mv = battery.millivolts(
                self.chip.battery_uv(), board.BATT_DIV_NUM, board.BATT_DIV_DEN
            )
            self._low = battery.is_low(self._mv, self.cfg["low_battery_mv"], self._low)
            log(self.chip, "battery %d mV (%d%%)" % (self._mv, battery.percent(self._mv)))
        return self._mv

    # -- sleep and faults --------------------------------------------------

    def sleep(self, at_least_ms=0, on_release=False):
        now = self.chip.clock_ms()
        wake_at = self.next_heartbeat
        if self.next_cover and self.next_cover < wake_at:
            wake_at = self.next_cover
        due = self.alerts.next_due()
        if due is not None and due < wake_at:
            wake_at = due
        ms = max(at_least_ms, wake_at - now)
        rtc = self.rtc
        rtc.flags = rtcmem.SCHEDULED | (rtcmem.STUCK if on_release else 0)
        rtc.next_counter = self.counters.next
        rtc.next_heartbeat = self.next_heartbeat
        rtc.next_cover = self.next_cover
        rtc.snapshot = self.alerts.snapshot()
        self.diag.store_writes += self.counters.writes
        self._keep()
        wakes = "on release" if on_release else "on a press"
        log(
            self.chip,
            "deep sleep %d ms, button wakes %s (%d alerts pending)"
            % (ms, wakes, self.alerts.pending),
        )
        self.chip.deepsleep(ms, on_release)

    def fault(self, code, fault):
        self.diag.error(code)
        log(self.chip, "FAULT %s: %s" % (fault.reason, fault))
        self.rtc.flags = 0
        self._keep()
        # A unit in fault sends nothing; a contact closed now must not wake
        # it again at once (the button wakes on a level).
        self.chip.deepsleep(_FAULT_SLEEP_MS, self.chip.pressed())


_WAKES = {hw.BUTTON_WAKE: "button", hw.TIMER_WAKE: "timer", hw.COLD_BOOT: "cold boot"}


def main():
    App(hw.Chip(), Radio()).run()
