# The whole layout of RTC memory, which survives deep sleep, a watchdog
# reset and a brownout, but not a power loss: a length-prefixed diagnostics
# record, then the app's record, under one CRC so that garbage after a
# power-on is recognised as such.
#
# App record (little-endian):
#   0  u8 flags       1  u8 stuck streak      2  u32 next counter
#   6  u64 next heartbeat (RTC ms)            14 u64 next cover sequence
#   22 u64 test mode until (RTC ms; 0: off)   30 u16 snapshot length
#   32 the sequencer's snapshot:
#      16 bytes an alert or cover sequence: u32 id, u64 next due (RTC ms),
#      u16 attempt, u16 last attempt (0: until acknowledged)
# The counter and schedules are valid only with SCHEDULED, which is set at
# deep sleep for the next boot alone: were a run reset before it sleeps, a
# stale next counter would be reused. Test mode (set by the wired test_mode
# command) is valid whatever the flags: it ends at its time, or with RTC
# memory at a power loss.
import struct
from binascii import crc32

from amr.compat import const

SCHEDULED = const(1)  # next counter, schedules and snapshot are valid
STUCK = const(2)  # the contact was closed at sleep: the button wakes on release
SERVICE = const(4)  # open service mode at the next run of the app (wired `service`)

_APP = "<BBIQQQH"
_APP_SIZE = const(32)
_PLAN = "<IQHH"
_PLAN_SIZE = const(16)


def pack(diag_bytes, app_bytes):
    body = struct.pack("<H", len(diag_bytes)) + diag_bytes + app_bytes
    return struct.pack("<H", len(body)) + body + struct.pack("<I", crc32(body) & 0xFFFFFFFF)


def unpack(data):
    """(diagnostics bytes, app bytes), or None if `data` is not ours."""
    if len(data) < 8:
        return None
    (body_len,) = struct.unpack_from("<H", data, 0)
    if 2 + body_len + 4 > len(data):
        return None
    body = bytes(data[2 : 2 + body_len])
    if struct.unpack_from("<I", data, 2 + body_len)[0] != crc32(body) & 0xFFFFFFFF:
        return None
    (diag_len,) = struct.unpack_from("<H", body, 0)
    if 2 + diag_len > body_len:
        return None
    return body[2 : 2 + diag_len], body[2 + diag_len :]


class AppRecord:
    """What one run of the app leaves for the next."""

    def __init__(self):
        self.flags = 0
        self.stuck_streak = 0  # stuck episodes in a row (see App._stuck_wait_ms)
        self.next_counter = 0
        self.next_heartbeat = 0
        self.next_cover = 0
        self.test_until = 0  # RTC ms: an alarm gesture before this is a test press
        self.snapshot = b""

    def test_mode(self, now):
        """Is the unit in test mode at `now` (RTC ms)?"""
        return now < self.test_until

    def encode(self):
        head = struct.pack(
            _APP,
            self.flags,
            min(self.stuck_streak, 255),
            self.next_counter,
            self.next_heartbeat,
            self.next_cover,
            self.test_until,
            len(self.snapshot),
        )
        return head + self.snapshot


def pack_plan(plan):
    """The sequencer's snapshot: plan is {id: [next due, attempt, last]}."""
    out = bytearray(_PLAN_SIZE * len(plan))
    for i, alert_id in enumerate(plan):
        due, attempt, last = plan[alert_id]
        struct.pack_into(_PLAN, out, i * _PLAN_SIZE, alert_id, due, attempt, last)
    return bytes(out)


def plan_entries(data):
    """(id, next due, attempt, last) of each entry of a snapshot."""
    for i in range(0, len(data) - _PLAN_SIZE + 1, _PLAN_SIZE):
        yield struct.unpack_from(_PLAN, data, i)


def decode_app(data):
    """The AppRecord in `data`; a fresh one if there is none."""
    rec = AppRecord()
    if len(data) < _APP_SIZE:
        return rec
    flags, streak, counter, heartbeat, cover, test_until, n = struct.unpack_from(_APP, data, 0)
    rec.flags = flags
    rec.stuck_streak = streak
    rec.test_until = test_until
    if flags & SCHEDULED:
        rec.next_counter = counter
        rec.next_heartbeat = heartbeat
        rec.next_cover = cover
        rec.snapshot = bytes(data[_APP_SIZE : _APP_SIZE + n])
    return rec
