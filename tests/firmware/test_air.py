# The air queue under the MicroPython unix port, with stand-ins for the
# chip, the radio and the gauge: what it puts on the air, and when, for an
# alert and for a cover sequence that must look the same.
from membackend import MemBackend

from amr import frame
from amr.air import AirQueue
from amr.alert import Sequencer
from amr.config import DEFAULTS
from amr.diag import Diagnostics
from amr.records import STATE
from amr.state import Counters, State
from amr.store import SlotStore

KEYS = bytes(range(56))
SHORT = 1  # a cover length draw: one retry (alert.py _COVER_LENGTHS[0])


class Chip:
    def random_u32(self):
        return SHORT

    def clock_ms(self):
        return 0  # the frames' clock: not what these tests look at


class Radio:
    def __init__(self):
        self.sent = []  # (payload, listen)
        self.acked = []

    def advertise(self, payload, listen=True):
        self.sent.append((payload, listen))

    def listen_for(self, tags):
        pass

    def stop(self):
        pass


class Sealer:
    """Frames as (kind, alert id, attempt): what only the receiver reads."""

    def seal(self, kind, counter, alert_id, attempt, pct, flags, clock_s):
        return (kind, alert_id, attempt)

    def ack_tag(self, alert_id):
        return b"tag"


class Gauge:
    low = False

    def millivolts(self):
        return 3000

    def has_reading(self):
        return True

    def below_floor(self):
        return False

    def percent(self):
        return 100


class Log:
    def __init__(self):
        self.diag = Diagnostics()

    def say(self, message):
        pass


def queue(cover_per_day=0):
    cfg = dict(DEFAULTS, cover_per_day=cover_per_day)
    chip = Chip()
    counters = Counters(SlotStore(MemBackend(), STATE[1]), State())
    alerts = Sequencer(cfg, counters, chip.random_u32)
    radio = Radio()
    air = AirQueue(chip, radio, Sealer(), alerts, Gauge(), Log(), cfg)
    return air, alerts, radio


def run(air, times):
    """Poll at these RTC times; (time, frame, listen) of each frame sent."""
    out = []
    for t in times:
        before = len(air._radio.sent)
        air.poll(t)
        out += [(t, f, listen) for f, listen in air._radio.sent[before:]]
    return out


def test_a_cover_burst_cuts_a_heartbeat_short_as_an_alert_burst_does():
    # A heartbeat goes on the air at 1; 300 ms into its 1 s window an alarm
    # (or a cover sequence) starts: its burst goes out at once, not at 1001.
    times = (300, 1001, 5900, 8200)
    air, alerts, radio = queue()
    air.resume(0, 1, 0)
    air.poll(1)
    assert radio.sent[0][0][0] == frame.HEARTBEAT
    alerts.alarm(300)
    alert = run(air, times)
    cov, _, radio = queue(cover_per_day=1)
    cov.resume(0, 1, 300)  # the next cover sequence is due at 300
    cov.poll(1)
    assert radio.sent[0][0][0] == frame.HEARTBEAT
    cover = run(cov, times)
    # The same times, the same listening (none in the burst, as radio.py
    # says), the same attempts: the burst, then the first retry once the
    # burst and the first back-off are over; only the sealed kind differs.
    shape = [(300, 0, False), (8200, 1, True)]
    assert [(t, f[2], listen) for t, f, listen in alert] == shape
    assert [(t, f[2], listen) for t, f, listen in cover] == shape
    assert [f[0] for _, f, _ in alert] == [frame.ALERT, frame.ALERT_RETRANSMISSION]
    assert [f[0] for _, f, _ in cover] == [frame.HEARTBEAT, frame.HEARTBEAT]


def test_a_burst_waits_for_another_burst():
    air, alerts, _ = queue(cover_per_day=1)
    air.resume(0, 10**9, 300)
    alerts.alarm(0)
    sent = run(air, (0, 300, 5599, 5600))
    # The alert's burst holds the air until 5600; the cover burst follows it.
    assert [(t, f[2]) for t, f, _ in sent] == [(0, 0), (5600, 0)]
