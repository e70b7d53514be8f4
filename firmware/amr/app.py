# The application: one run per wake. Every wake from deep sleep is a reboot;
# this module reads why it woke, composes the roles that do the wake's work,
# runs them until each is done, and goes back to deep sleep with the next
# wake chosen by them.
#   button -> recognise the gesture (staying awake for its whole window) -> alert
#   timer  -> heartbeat and alert retries
#   cold boot (power-on, reset) -> resume pending alerts, schedule the heartbeat
#   any wake after the wired `service` command (a flag in RTC memory) ->
#       service mode, once the radio is quiet
# The roles, each with poll(now) and deadline() (as the recogniser has): the
# button (button.py), the air queue (air.py), service mode (service_mode.py)
# and the battery gauge (gauge.py); faults and the log (log.py). The
# sequencer (alert.py) alone owns the counters; rtcmem.py holds the whole
# layout of RTC memory; blecore.py owns the radio.
# A corrupt or missing config or state is a visible fault: the unit records
# the reason, sends nothing, and waits to be serviced. It never runs on
# defaults.
from amr import diag as diagnostics
from amr import hw, press, records, rtcmem
from amr.air import AirQueue
from amr.alert import Sequencer
from amr.button import Button
from amr.compat import const
from amr.contract import PWRON_RESET
from amr.frame import Sealer
from amr.gauge import BatteryGauge
from amr.log import Log
from amr.nvs import record_store
from amr.provisioning import decode_provisioning
from amr.radio import Radio
from amr.service_mode import ServiceMode
from amr.state import Counters, decode_state
from amr.store import StoreFault

_FAULT_SLEEP_MS = const(3600000)
# After a brownout the cell needs rest before the radio draws on it again
# (a coin cell's voltage recovers over tens of seconds after a burst).
_BROWNOUT_REST_MS = const(60000)

_GESTURE_NAMES = {
    press.ALARM_HOLD: "alarm (hold)",
    press.ALARM_MULTI: "alarm (presses)",
    press.SERVICE: "service gesture",
    press.REJECTED: "rejected",
}
_WAKES = {hw.BUTTON_WAKE: "button", hw.TIMER_WAKE: "timer", hw.COLD_BOOT: "cold boot"}


class App:
    def __init__(self, chip, radio):
        self.chip = chip
        self.radio = radio
        saved = rtcmem.unpack(chip.rtc_memory())
        diag = diagnostics.load(saved[0] if saved else None)
        self.log = Log(chip, diag)
        if not diag.restored:
            self.log.say("diagnostics start afresh (RTC memory lost: power-on)")
        cause = chip.reset_cause()
        # The ESP32 port reports a brownout as a power-on reset; RTC memory
        # that still holds our record means power never fully went away.
        self.brownout = cause == PWRON_RESET and diag.restored
        diag.count_reset(cause, brownout=self.brownout)
        self.rtc = rtcmem.decode_app(saved[1] if saved else b"")
        self.service_asked = False  # set by _load from the RTC record

    # -- boot --------------------------------------------------------------

    def _load(self, cfg, keys):
        """Counter state from flash, schedules from RTC memory, and the roles."""
        chip = self.chip
        now = chip.clock_ms()
        store = record_store(records.STATE)
        state = decode_state(store.load())
        self.log.diag.store_repairs += store.damaged
        rtc = self.rtc
        resume_at = rtc.next_counter if rtc.flags & rtcmem.SCHEDULED else None
        # The wired `service` command asks this run for service mode, once.
        self.service_asked = bool(rtc.flags & rtcmem.SERVICE)
        # The RTC copy of the next counter is valid for this boot only: were
        # this run reset before it sleeps, the stale value would reuse counters.
        rtc.flags &= ~(rtcmem.SCHEDULED | rtcmem.SERVICE)
        self._keep()
        sealer = Sealer(keys)
        self.alerts = Sequencer(cfg, Counters(store, state, resume_at), chip.random_u32)
        self.alerts.restore(now, rtc.snapshot)
        self.gauge = BatteryGauge(chip, cfg, self.log)
        self.air = AirQueue(chip, self.radio, sealer, self.alerts, self.gauge, self.log, cfg)
        self.air.resume(now, rtc.next_heartbeat, rtc.next_cover)
        self.service = ServiceMode(chip, sealer, self.gauge, self.log, self._keep_diag)
        self.button = Button(chip, cfg, rtc, self.log, self._gesture)

    def _keep(self):
        """Diagnostics and the app record into RTC memory."""
        self.chip.keep(rtcmem.pack(self.log.diag.encode(), self.rtc.encode()))

    def _keep_diag(self, diag):
        self.log.diag = diag
        self._keep()

    def _records(self):
        """Config and keys from the provisioning record; a fault (and None)
        if it is missing or unusable: a config fault if its config is bad,
        else a key fault (not provisioned, wiped, or damaged)."""
        try:
            prov = decode_provisioning(record_store(records.PROVISION).load())
        except StoreFault as fault:
            bad_config = fault.reason.startswith("config")
            self.fault(diagnostics.E_CONFIG if bad_config else diagnostics.E_KEYS, fault)
            return None
        return prov.config, prov.keys

    # -- one wake ----------------------------------------------------------

    def run(self):
        chip = self.chip
        # Edges are captured from the first moment, and the level read, before
        # the flash reads below: no edge of a gesture is lost to them.
        chip.listen()
        up_at, pressed = chip.ticks(), chip.pressed()
        chip.watch()  # from here on a hang resets the chip, and pending alerts resume
        wake = chip.wake()
        self.log.say("boot: reset cause %d, wake %s" % (chip.reset_cause(), _WAKES[wake]))
        loaded = self._records()
        if loaded is None:
            return
        try:
            self._load(*loaded)
        except StoreFault as fault:
            self.fault(diagnostics.E_STATE, fault)
            return
        if self.brownout:
            # Alerts stay pending; they go out once the cell has recovered.
            self.log.say("brownout: resting the cell before the radio draws again")
            # The button wakes on a level: a gesture still held would wake the
            # unit at once into the radio and the next brownout, a loop.
            self.sleep(_BROWNOUT_REST_MS, on_release=self.chip.pressed())
            return
        self.button.start(wake, up_at, pressed)
        try:
            self._awake()
        except StoreFault as fault:
            # A write the flash refused (full, worn) where no alert hangs on
            # it any more: a counter block, an acknowledgement.
            self.air.stop()
            self.fault(diagnostics.E_FLASH_WRITE, fault)
            return
        self.button.end()
        self.sleep(on_release=self.button.stuck)

    def _awake(self):
        """Stay up while a gesture is open or the radio has work; between
        looks, idle until the earliest deadline of any role."""
        chip = self.chip
        button, air, service, gauge = self.button, self.air, self.service, self.gauge
        while True:
            chip.feed()
            ticks = chip.ticks()
            button.poll(ticks)
            now = chip.clock_ms()
            air.paused = service.is_open
            air.poll(now)
            if self.service_asked and air.idle(now):
                # Asked over the wire: opened once this wake's frames are out.
                self.service_asked = False
                self._open_service("asked over the wired link")
            service.poll(now)
            # An alert the flash could not keep lives in RAM: no deep sleep
            # (a reboot) until it is acknowledged.
            unsaved = self.alerts.unsaved
            if button.quiet(ticks) and air.idle(now) and not service.is_open and not unsaved:
                break
            # Edges and radio events come in meanwhile without waking the
            # loop: never idle longer than a slice.
            wait = hw.IDLE_SLICE_MS
            due = button.deadline()
            if due is not None:
                wait = min(wait, due - ticks)
            for due in (air.deadline(), service.deadline(), gauge.deadline()):
                if due is not None:
                    wait = min(wait, due - now)
            chip.idle(max(1, wait))
        air.stop()

    def _gesture(self, event, presses):
        # Each event ends a gesture (an alarm latches until release).
        log = self.log
        log.diag.presses += presses
        log.say("gesture: %s after %d presses" % (_GESTURE_NAMES[event], presses))
        if event in (press.ALARM_HOLD, press.ALARM_MULTI):
            self.service.close("alarm")  # the alarm wins the radio
            now = self.chip.clock_ms()
            test = self.rtc.test_mode(now)
            alert_id = self.alerts.alarm(now, test)
            if not test:
                log.diag.alerts += 1
            # Into RTC memory now, so a brownout at the first frame keeps the count.
            self._keep()
            what = "test press" if test else "alert"
            if alert_id in self.alerts.unsaved:
                log.diag.error(diagnostics.E_FLASH_WRITE)
                why = self.alerts.write_fault
                log.say("%s %d reserved in RAM only: %s" % (what, alert_id, why))
            else:
                log.say("%s %d reserved and persisted" % (what, alert_id))
            if self.alerts.evicted is not None:
                log.say("alert %d no longer retried: too many pending" % self.alerts.evicted)
        elif event == press.REJECTED:
            log.diag.gestures_rejected += 1
        elif event == press.SERVICE:
            self._open_service("service gesture")

    def _open_service(self, why):
        if self.service.is_open:
            return
        if self.air.waiting or self.alerts.busy:
            # One radio: alerts come first, service mode waits for a quiet unit.
            self.log.say("service mode refused (%s): alerts are on the air" % why)
            return
        self.air.stop()
        self.service.open(self.chip.clock_ms())

    # -- sleep and faults --------------------------------------------------

    def sleep(self, at_least_ms=0, on_release=False):
        now = self.chip.clock_ms()
        ms = max(at_least_ms, self.air.wake_at() - now)
        rtc = self.rtc
        rtc.flags = rtcmem.SCHEDULED | (rtcmem.STUCK if on_release else 0)
        rtc.next_counter = self.alerts.next_counter
        rtc.next_heartbeat = self.air.next_heartbeat
        rtc.next_cover = self.air.next_cover
        rtc.snapshot = self.alerts.snapshot()
        self.log.diag.store_writes += self.alerts.writes
        self._keep()
        wakes = "on release" if on_release else "on a press"
        self.log.say(
            "deep sleep %d ms, button wakes %s (%d alerts pending)"
            % (ms, wakes, self.alerts.pending)
        )
        self.chip.deepsleep(ms, on_release)

    def fault(self, code, fault):
        self.log.fault(code, "%s: %s" % (fault.reason, fault))
        self.rtc.flags = 0
        self._keep()
        # A unit in fault sends nothing; a contact closed now must not wake
        # it again at once (the button wakes on a level).
        self.chip.deepsleep(_FAULT_SLEEP_MS, self.chip.pressed())


def main():
    App(hw.Chip(), Radio()).run()
