# Power-fail-safe record store: two slots, each holding one whole record
#
#   magic b"AR" | version u8 | kind u8 | seq u32 | length u16 | payload | crc32 u32
#
# (little-endian, CRC over everything before it). A save always goes to the
# slot that does not hold the newest valid record, so a write torn at any
# byte leaves the last good copy intact, and load() takes the valid record
# with the newer seq.
#
# seq wraps at 2**32 and is compared with serial-number arithmetic (RFC 1982):
# a is newer than b when (a - b) mod 2**32 is in 1..2**31-1. The two slots
# only ever differ by one save, so the comparison is always decided and the
# wrap needs no special case (and, at one save per 64 frames, is never
# reached by a real unit anyway).
#
# Pure logic: a backend is any object with read(slot) -> bytes or None
# (None: nothing stored), write(slot, data) and erase(slot) (nothing stored
# afterwards; erasing an empty slot is no error). Each write and each erase
# is atomic on its own (NVS guarantees it per key).
import binascii
import struct

from amr.compat import const

MAX_RECORD = const(256)  # largest record a backend has to hold
OVERHEAD = const(14)  # header + CRC
MAX_PAYLOAD = const(242)  # MAX_RECORD - OVERHEAD

_HEADER = "<2sBBIH"
_HEADER_LEN = const(10)
_MAGIC = b"AR"
_VERSION = const(1)
_MASK = const(0xFFFFFFFF)
_HALF = const(0x80000000)


WRITE_FAILED = "write failed"  # StoreFault reason: the flash refused a write (full, worn)


class StoreFault(Exception):
    """Stored data the unit cannot use: the app shows a fault, never guesses.

    `reason` is a short code for diagnostics ("missing", "corrupt",
    "config field hold_ms=99999 out of range 800..5000"); the message also
    says what to do.
    """

    def __init__(self, reason, message=None):
        super().__init__(message or reason)
        self.reason = reason


def newer(a, b):
    """True if sequence number a is newer than b (serial-number arithmetic)."""
    return 0 < ((a - b) & _MASK) < _HALF


def pack_record(kind, seq, payload):
    """The bytes of one record."""
    head = struct.pack(_HEADER, _MAGIC, _VERSION, kind, seq & _MASK, len(payload))
    body = head + bytes(payload)
    return body + struct.pack("<I", binascii.crc32(body) & _MASK)


def unpack_record(data, kind):
    """(seq, payload) of a valid record of this kind, else None."""
    n = len(data)
    if n < OVERHEAD:
        return None
    magic, version, got_kind, seq, length = struct.unpack_from(_HEADER, data)
    if magic != _MAGIC or version != _VERSION or got_kind != kind or length != n - OVERHEAD:
        return None
    crc = struct.unpack_from("<I", data, n - 4)[0]
    if binascii.crc32(memoryview(data)[: n - 4]) & _MASK != crc:
        return None
    return seq, bytes(data[_HEADER_LEN : n - 4])


class SlotStore:
    """Two-slot store for records of one kind (e.g. ord("S")) on a backend.

    seq: seq of the record last loaded or saved (0: none yet).
    damaged: slots that held something invalid at the last load, for the
    app's diagnostics (the next save overwrites a damaged slot).
    """

    def __init__(self, backend, kind):
        self._backend = backend
        self._kind = kind
        # Slot of the newest valid record; with none, 1 so that the first save
        # goes to slot 0.
        self._slot = 1
        self._scanned = False
        self.seq = 0
        self.damaged = 0

    def _scan(self):
        """Find the newest valid record; returns (payload or None, slots in use)."""
        self._scanned = True
        self._slot = 1
        self.seq = 0
        self.damaged = 0
        best = None
        used = 0
        for slot in (0, 1):
            data = self._backend.read(slot)
            if data is None:
                continue
            used += 1
            record = unpack_record(data, self._kind)
            if record is None:
                self.damaged += 1
            elif best is None or newer(record[0], self.seq):
                self.seq, best = record
                self._slot = slot
        return best, used

    def load(self):
        """Payload of the newest valid record; StoreFault if there is none."""
        payload, used = self._scan()
        if payload is not None:
            return payload
        name = chr(self._kind)
        if used:
            raise StoreFault(
                "corrupt",
                f"store {name}: {used} slot(s) hold data but none is a valid record (bad "
                "magic, version, kind, length or CRC); re-provision the unit from the host",
            )
        raise StoreFault(
            "missing", f"store {name}: nothing saved yet; provision the unit from the host"
        )

    def save(self, payload):
        """Write payload as the next record, never over the newest valid one.

        Before any load() this first scans the slots, so it continues after an
        existing record and starts at seq 1 on an empty or unreadable store.
        If the write fails, the store is unchanged and a retry is safe.
        """
        if len(payload) > MAX_PAYLOAD:
            raise StoreFault(
                "too large",
                f"store {chr(self._kind)}: payload of {len(payload)} bytes exceeds "
                f"{MAX_PAYLOAD}; this is a firmware bug",
            )
        if not self._scanned:
            self._scan()
        seq = (self.seq + 1) & _MASK
        slot = 1 - self._slot
        try:
            self._backend.write(slot, pack_record(self._kind, seq, payload))
        except OSError as e:  # the flash is full or worn: ESP-IDF refused the write
            raise StoreFault(
                WRITE_FAILED,
                f"store {chr(self._kind)}: flash write failed ({e.args[0] if e.args else e}); "
                "the flash is full or worn: service the unit",
            ) from e
        self._slot = slot
        self.seq = seq

    def erase(self):
        """Erase both slots, the one not holding the newest valid record
        first: a power cut between the two leaves the newest record (never
        an older one brought back), after the second there is none."""
        self._scan()
        for slot in (1 - self._slot, self._slot):
            if self._backend.read(slot) is not None:
                self._backend.erase(slot)
        self._slot = 1
        self.seq = 0
        self.damaged = 0
