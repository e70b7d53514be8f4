# Diagnostics counters, kept across deep sleep in RTC memory and persisted
# by the app now and then, read out by the host in service mode.
#
# RTC memory survives deep sleep but not a power loss: after a cell change or
# a supply dropout it holds garbage (or nothing). The record therefore
# carries a magic, a layout version and a CRC32; decode() returns None for
# anything else, and the app then starts fresh counters (load()), which the
# host sees as `restored: False` and a boot count restarting from 1. Garbage
# is never taken for counters.
#
# Brownout: MicroPython's ESP32 port reports ESP_RST_BROWNOUT as PWRON_RESET
# (ports/esp32/modmachine.c) and has no brownout constant, so the app tells
# count_reset() with brownout=True. The app can tell because a brownout
# (the supply dipping under the detector threshold, e.g. a radio burst on a
# tired coin cell) leaves RTC memory powered: a PWRON_RESET with a record
# that decodes from RTC memory was a brownout, a real power-on leaves
# garbage. (To be confirmed on hardware for each chip.)
#
# Layout (little-endian, SIZE bytes):
#   0  u32 magic      4  u8 version   5  u8 reserved (0)   6  u16 last_error
#   8  u32 x 15: boots, 6 reset causes, presses, gestures_rejected, alerts,
#      frames_sent, faults, store_writes, store_repairs, last_error_boot
#   68 u32 CRC32 of bytes 0..67
import struct
from binascii import crc32

from amr.compat import const
from amr.contract import DEEPSLEEP_RESET, HARD_RESET, PWRON_RESET, SOFT_RESET, WDT_RESET

# Fault codes (last_error) and what the service readout calls them.
E_CONFIG = const(1)
E_STATE = const(2)
E_BATTERY_FLOOR = const(3)
E_KEYS = const(4)
E_STUCK_BUTTON = const(5)
E_FLASH_WRITE = const(6)
FAULT_NAMES = {
    E_CONFIG: "config unreadable",
    E_STATE: "counter state unreadable",
    E_BATTERY_FLOOR: "battery below floor",
    E_KEYS: "keys unreadable",
    E_STUCK_BUTTON: "stuck button",
    E_FLASH_WRITE: "flash write failed",
}

SIZE = const(72)
_BODY = const(68)
_MAGIC = const(0x41D1A6C5)
_VERSION = const(1)
_FMT = "<IBBH15I"
_U32 = const(0xFFFFFFFF)
_U16 = const(0xFFFF)

# Counter names in record order; as_dict() uses them as keys.
FIELDS = (
    "boots",
    "reset_power_on",
    "reset_hard",
    "reset_watchdog",
    "reset_deepsleep",
    "reset_soft",
    "reset_brownout",
    "presses",
    "gestures_rejected",
    "alerts",
    "frames_sent",
    "faults",
    "store_writes",
    "store_repairs",
    "last_error_boot",
    "last_error",
)


class Diagnostics:
    def __init__(self) -> None:
        self.boots = 0
        self.reset_power_on = 0
        self.reset_hard = 0
        self.reset_watchdog = 0
        self.reset_deepsleep = 0
        self.reset_soft = 0
        self.reset_brownout = 0
        self.presses = 0
        self.gestures_rejected = 0
        self.alerts = 0
        self.frames_sent = 0
        self.faults = 0
        self.store_writes = 0  # flash writes of the state store (wear)
        self.store_repairs = 0  # damaged store slots found and repaired
        self.last_error = 0  # u16 fault code, 0 = none yet
        self.last_error_boot = 0  # value of boots when last_error happened
        # True when these counters came from a stored record, False when they
        # started from zero at this boot. Not part of the record.
        self.restored = False
        self._buf = bytearray(SIZE)
        self._body = memoryview(self._buf)[:_BODY]

    def count_reset(self, cause: int, brownout: bool = False) -> None:
        """Count one boot and its cause, a machine.reset_cause() value.

        brownout=True counts it as a brownout instead (see the module
        comment). Unknown causes (0 on the ESP32 port: SDIO, unknown) count
        only as a boot.
        """
        self.boots += 1
        if brownout:
            self.reset_brownout += 1
        elif cause == PWRON_RESET:
            self.reset_power_on += 1
        elif cause == HARD_RESET:
            self.reset_hard += 1
        elif cause == WDT_RESET:
            self.reset_watchdog += 1
        elif cause == DEEPSLEEP_RESET:
            self.reset_deepsleep += 1
        elif cause == SOFT_RESET:
            self.reset_soft += 1

    def error(self, code: int, boot: int | None = None) -> None:
        """Record a fault: count it, remember its u16 code and the boot number
        it happened in (this boot unless given)."""
        self.faults += 1
        self.last_error = code & _U16
        self.last_error_boot = self.boots if boot is None else boot

    def encode(self) -> bytes:
        """The SIZE-byte record, for RTC memory or flash."""
        b = self._buf
        # Masked so that no counter can make encode() raise (CPython's struct
        # rejects out-of-range values); a wrapped counter beats a crash here.
        struct.pack_into(
            _FMT,
            b,
            0,
            _MAGIC,
            _VERSION,
            0,
            self.last_error & _U16,
            self.boots & _U32,
            self.reset_power_on & _U32,
            self.reset_hard & _U32,
            self.reset_watchdog & _U32,
            self.reset_deepsleep & _U32,
            self.reset_soft & _U32,
            self.reset_brownout & _U32,
            self.presses & _U32,
            self.gestures_rejected & _U32,
            self.alerts & _U32,
            self.frames_sent & _U32,
            self.faults & _U32,
            self.store_writes & _U32,
            self.store_repairs & _U32,
            self.last_error_boot & _U32,
        )
        struct.pack_into("<I", b, _BODY, crc32(self._body))
        return bytes(b)

    @staticmethod
    def decode(data: bytes | bytearray | memoryview | None) -> "Diagnostics | None":
        """Same as diag.decode()."""
        return decode(data)

    def as_dict(self) -> dict:
        """All counters by name, plus `restored`, for readout by the host."""
        d = {}
        for name in FIELDS:
            d[name] = getattr(self, name)
        d["restored"] = self.restored
        return d


def decode(data: bytes | bytearray | memoryview | None) -> Diagnostics | None:
    """Counters from a record, or None if it is not one (wrong length, magic,
    version or CRC), as after a power loss."""
    if data is None or len(data) != SIZE:
        return None
    v = struct.unpack_from(_FMT, data, 0)
    if v[0] != _MAGIC or v[1] != _VERSION:
        return None
    if struct.unpack_from("<I", data, _BODY)[0] != crc32(memoryview(data)[:_BODY]):
        return None
    d = Diagnostics()
    d.last_error = v[3]
    (
        d.boots,
        d.reset_power_on,
        d.reset_hard,
        d.reset_watchdog,
        d.reset_deepsleep,
        d.reset_soft,
        d.reset_brownout,
        d.presses,
        d.gestures_rejected,
        d.alerts,
        d.frames_sent,
        d.faults,
        d.store_writes,
        d.store_repairs,
        d.last_error_boot,
    ) = v[4:]
    d.restored = True
    return d


def load(data: bytes | bytearray | memoryview | None) -> Diagnostics:
    """decode(data), or fresh counters (restored False) if data is not a record."""
    d = decode(data)
    return d if d is not None else Diagnostics()
