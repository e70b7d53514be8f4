# Frame-counter and pending-alert state.
#
# Every frame carries a fresh 32-bit counter that becomes its AES-CCM nonce,
# so no counter may ever be handed out twice, whatever write a power cut hits.
# Counters are reserved in blocks: the persisted high-water mark (hwm) says
# "every counter below this may have been used"; it is raised and saved
# BEFORE a counter at or above it is returned, so after a power loss the unit
# resumes at hwm and at worst skips the rest of a block. Across deep sleep
# the next counter is kept in RTC memory (resume_at) and no write is needed.
#
# Alert ids are counters too (reserved by raise_alert, never returned by
# take()); the pending list keeps the unacknowledged ones, oldest first, and
# is saved on every change so a raised alert survives any power cut.
# A test press (the store's acceptance check, amr/commands.py test_mode) is
# pending like an alert, marked as a test in the same record, so that after
# any power cut its frames still go out as test presses, never as alerts.
#
# Payload, version 2 (22 bytes): version u8 | pending count (low nibble) and
# test mask (high nibble: bit i set = pending[i] is a test press) u8 |
# hwm u32 | MAX_PENDING ids u32 (unused ones 0). Version 1 (no test mask)
# is still read.
#
# Pure logic; the store is a SlotStore (amr.store).
import struct

from amr.compat import const
from amr.store import WRITE_FAILED, StoreFault

COUNTER_BLOCK = const(64)
MAX_PENDING = const(4)

_VERSION = const(2)
_VERSION_NO_TESTS = const(1)
_FORMAT = "<BBI4I"  # version, pending count | test mask << 4, hwm, MAX_PENDING ids
STATE_SIZE = const(22)
# hwm is a u32, so counter 0xFFFFFFFF is never handed out: counters are
# 0 .. _LIMIT - 1, then the unit must be re-keyed.
_LIMIT = const(0xFFFFFFFF)


class State:
    def __init__(self, counter_hwm=0, pending=None, tests=None):
        self.counter_hwm = counter_hwm  # every counter below this may have been used
        self.pending = [] if pending is None else pending  # alert ids, oldest first
        self.tests = [] if tests is None else tests  # those of them that are test presses


def _fault(reason):
    return StoreFault(
        reason,
        f"{reason}; the counter state cannot be trusted, so the unit must be re-keyed and "
        "re-provisioned from the host (a counter must never be reused)",
    )


def _check(hwm, pending, tests=()):
    for alert in tests:
        if alert not in pending:
            raise _fault(f"state field test press {alert} not pending")
    if not 0 <= hwm <= _LIMIT:
        raise _fault(f"state field counter_hwm={hwm} out of range 0..{_LIMIT}")
    if len(pending) > MAX_PENDING:
        raise _fault(f"state field pending count {len(pending)} > {MAX_PENDING}")
    last = -1
    for i, alert in enumerate(pending):
        if alert >= hwm:
            raise _fault(f"state field pending[{i}]={alert} not below counter_hwm={hwm}")
        if alert == last:
            raise _fault(f"state field pending[{i}]={alert} duplicate")
        if alert < last:
            # Ids are counters, handed out in increasing order.
            raise _fault(f"state field pending[{i}]={alert} older than pending[{i - 1}]")
        last = alert


def encode_state(state):
    """Fixed 22-byte layout; refuses a state that decode_state would reject."""
    pending = state.pending
    _check(state.counter_hwm, pending, state.tests)
    mask = 0
    for i, alert in enumerate(pending):
        if alert in state.tests:
            mask |= 1 << i
    ids = pending + [0] * (MAX_PENDING - len(pending))
    return struct.pack(_FORMAT, _VERSION, len(pending) | mask << 4, state.counter_hwm, *ids)


def decode_state(payload):
    """State from a payload; StoreFault whose reason names the bad field."""
    if len(payload) != STATE_SIZE:
        raise _fault(f"state length {len(payload)}, expected {STATE_SIZE}")
    fields = struct.unpack(_FORMAT, payload)
    version, count, hwm = fields[0], fields[1], fields[2]
    if version not in (_VERSION, _VERSION_NO_TESTS):
        raise _fault(f"state version {version} not supported")
    mask = count >> 4 if version == _VERSION else 0
    count &= 0x0F if version == _VERSION else 0xFF
    if mask >> count:
        raise _fault(f"state field test mask {mask:#x} beyond pending count {count}")
    if count > MAX_PENDING:
        raise _fault(f"state field pending count {count} > {MAX_PENDING}")
    for i in range(count, MAX_PENDING):
        if fields[3 + i]:
            raise _fault(f"state field pending[{i}] set beyond pending count {count}")
    pending = list(fields[3 : 3 + count])
    _check(hwm, pending)
    return State(hwm, pending, [pending[i] for i in range(count) if mask >> i & 1])


def _block_end(n):
    return min(n + COUNTER_BLOCK, _LIMIT)


class Counters:
    """Hands out frame counters and alert ids from `state`, saving via `store`.

    resume_at: the next counter kept in RTC memory across deep sleep, or None
    after a power loss. A value outside [last pending id + 1, hwm] cannot be
    right and is ignored (resume at hwm). The caller must use it at most once:
    clear it at boot and write `next` only right before deep sleep, so a
    reset in between can never resume from a stale value.

    A full pending list (MAX_PENDING) never refuses a new alarm: the new alert
    is appended and the second-oldest is evicted, keeping the oldest (when the
    emergency began) and the newest ones. The evicted id is in `evicted` (None
    if nothing was evicted) for the caller to log, and `dropped` counts them.
    """

    def __init__(self, store, state, resume_at=None):
        self._store = store
        self.state = state
        self.writes = 0  # saves done, for wear diagnostics
        self.evicted = None
        self.dropped = 0
        self.unsaved = []  # alert ids raised while the flash refused writes: in RAM only
        self.write_fault = None  # the StoreFault of the last refused write, for the log
        low = state.pending[-1] + 1 if state.pending else 0
        if resume_at is None or not low <= resume_at <= state.counter_hwm:
            resume_at = state.counter_hwm
        self._next = resume_at

    @property
    def next(self):
        """The counter to keep in RTC memory before deep sleep."""
        return self._next

    def _reserve(self):
        n = self._next
        if n >= _LIMIT:
            raise StoreFault(
                "counters exhausted",
                "counters exhausted: all 2**32 frame counters are used up; "
                "re-key the unit from the host",
            )
        return n

    def _save(self, hwm, pending, tests=None):
        # The in-memory state changes only once the write has succeeded.
        if tests is None:
            tests = [a for a in self.state.tests if a in pending]
        self._store.save(encode_state(State(hwm, pending, tests)))
        self.unsaved = [a for a in self.unsaved if a not in pending]  # written with it
        self.writes += 1
        self.state.counter_hwm = hwm
        self.state.pending = pending
        self.state.tests = tests

    def take(self):
        """A never-used frame counter; persists a new block first if needed."""
        n = self._reserve()
        if n >= self.state.counter_hwm:
            self._save(_block_end(n), self.state.pending)
        self._next = n + 1
        return n

    def raise_alert(self, test=False):
        """Reserve a new alert id and persist it as pending (one write,
        always); with test, as a test press. Never 0: a frame's alert id 0
        means "no alert" (docs/protocol.md 3.4), so a first alarm skips it.

        If the flash refuses the write (full or worn) while the persisted
        block still holds a counter for it, the alert is raised all the
        same, kept in RAM only (listed in `unsaved`, the fault in
        `write_fault`): an alarm goes out even when it cannot be kept.
        """
        n = self._reserve() or 1
        pending = self.state.pending[:]
        evicted = pending.pop(1) if len(pending) >= MAX_PENDING else None
        pending.append(n)
        # This write is due anyway: let it also renew the block, so the retry
        # burst that follows an alert needs no write of its own.
        tests = [a for a in self.state.tests if a in pending]
        if test:
            tests.append(n)
        try:
            self._save(max(self.state.counter_hwm, _block_end(n)), pending, tests)
        except StoreFault as fault:
            if fault.reason != WRITE_FAILED or n >= self.state.counter_hwm:
                raise
            self.write_fault = fault
            self.unsaved.append(n)
            self.state.pending = pending
            self.state.tests = tests
        self._next = n + 1
        self.evicted = evicted
        if evicted is not None:
            self.dropped += 1
        return n

    def acknowledge(self, alert_id):
        """Drop an acknowledged alert and save; False (no write) if not pending.
        An alert only in RAM is dropped from RAM if the flash still refuses."""
        if alert_id not in self.state.pending:
            return False
        remaining = [a for a in self.state.pending if a != alert_id]
        try:
            self._save(self.state.counter_hwm, remaining)
        except StoreFault as fault:
            if fault.reason != WRITE_FAILED or alert_id not in self.unsaved:
                raise
            self.unsaved.remove(alert_id)
            self.state.pending = remaining
            self.state.tests = [a for a in self.state.tests if a in remaining]
        return True
