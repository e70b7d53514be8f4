# Unit configuration record, version 1: gesture timing, radio schedule and
# battery thresholds, all ints. Ranges and the cross-field rules that keep
# the gestures apart are checked on encode and on decode: a bad record is a
# StoreFault (the unit shows a fault), never a silent fall-back to DEFAULTS.
#
# Payload: version u8, then every field in FIELDS order, little-endian.
import struct

from amr.compat import const
from amr.store import StoreFault

VERSION = const(1)

# name, struct code, min, max, default
_TABLE = (
    ("hold_ms", "H", 800, 5000, 1500),  # a hold at least this long is an alarm
    ("multi_count", "B", 3, 6, 3),  # this many presses ...
    ("multi_window_ms", "H", 1000, 4000, 2000),  # ... within this window is an alarm
    ("press_settle_ms", "B", 5, 100, 30),  # closed this long to count as pressed
    ("release_settle_ms", "B", 10, 200, 60),  # open this long to count as released
    ("min_press_ms", "H", 20, 300, 50),  # shortest press that counts toward a multi-press
    ("service_pairs", "B", 2, 5, 3),  # service mode: this many double taps ...
    ("service_pair_ms", "H", 200, 1000, 600),  # ... whose presses start this close ...
    ("service_pause_min_ms", "H", 1200, 8000, 2500),  # ... with pauses between pairs
    ("service_pause_max_ms", "H", 2000, 15000, 6000),  # ... in this range
    # Every 6 h: the policy the reference board's two years on a CR2032 are
    # computed for (docs/power.md; hourly beats would give 1.1 years).
    # The receiver reports a unit silent after 2.5 intervals, 15 h.
    ("heartbeat_s", "I", 60, 86400, 21600),
    # Initial alert burst: one scan interval plus one window of a phone
    # scanning in the background (0.5 s in every 5 s) and a margin, so it
    # hears the burst whatever its phase (docs/protocol.md 6.2 says why not
    # longer: the coin cell's end of life).
    ("burst_ms", "H", 500, 20000, 5600),
    ("retry_first_s", "B", 1, 30, 2),  # alert retry back-off bounds
    ("retry_max_s", "B", 5, 60, 60),
    # From the power model (`amr power`, docs/power.md): the warning 30 days
    # before the end, the floor 7 days of use and an alert sequence before it.
    ("battery_floor_mv", "H", 1800, 2800, 2710),  # alert retries stop below this
    ("low_battery_mv", "H", 2000, 3000, 2790),
    # Cover traffic: sequences a day that look like an alert's (burst, then
    # retries) but carry heartbeats, so an alert cannot be told by its timing.
    ("cover_per_day", "B", 0, 48, 0),
)

FIELDS = tuple(row[:4] for row in _TABLE)
DEFAULTS = {row[0]: row[4] for row in _TABLE}
_FORMAT = "<B" + "".join(row[1] for row in _TABLE)
CONFIG_SIZE = struct.calcsize(_FORMAT)

# (a, op, b): cfg[a] op cfg[b] must hold.
RULES = (
    # Every 3 presses of the service pattern span a pause longer than the
    # alarm window, so the alarm recogniser rejects it by construction.
    ("service_pause_min_ms", ">", "multi_window_ms"),
    ("service_pause_max_ms", ">", "service_pause_min_ms"),
    ("service_pair_ms", "<", "multi_window_ms"),
    ("retry_first_s", "<=", "retry_max_s"),
    ("low_battery_mv", ">", "battery_floor_mv"),  # warn before retries stop
    ("min_press_ms", "<", "hold_ms"),
)


def _fault(reason):
    return StoreFault(reason, f"{reason}; provision a valid config from the host")


def _holds(a, op, b):
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    return a > b


def validate(cfg):
    """Raise StoreFault naming the first missing, unknown or bad field or rule."""
    for name, _code, low, high in FIELDS:
        if name not in cfg:
            raise _fault(f"config field {name} missing")
        value = cfg[name]
        if type(value) is not int:
            raise _fault(f"config field {name}={value!r} not an int")
        if not low <= value <= high:
            raise _fault(f"config field {name}={value} out of range {low}..{high}")
    if len(cfg) != len(FIELDS):
        for name in cfg:
            if name not in DEFAULTS:
                raise _fault(f"config field {name} unknown")
    for a, op, b in RULES:
        if not _holds(cfg[a], op, cfg[b]):
            raise _fault(f"config rule {a} {op} {b} broken ({cfg[a]} vs {cfg[b]})")


def encode_config(cfg):
    """Payload bytes of a config dict; validates first."""
    validate(cfg)
    return struct.pack(_FORMAT, VERSION, *[cfg[row[0]] for row in _TABLE])


def decode_config(payload):
    """Config dict from a payload; StoreFault on any bad version, size, field or rule."""
    if payload and payload[0] != VERSION:
        raise _fault(f"config version {payload[0]} not supported")
    if len(payload) != CONFIG_SIZE:
        raise _fault(f"config length {len(payload)}, expected {CONFIG_SIZE}")
    values = struct.unpack(_FORMAT, payload)
    cfg = {}
    for i, row in enumerate(_TABLE):
        cfg[row[0]] = values[i + 1]
    validate(cfg)
    return cfg
