# amr.state under the MicroPython unix port: layout, validation, the counter
# allocator, wear, and power cuts at every write of a whole history.
import random

from membackend import MemBackend, PowerCut, cut_points

from amr.state import (
    COUNTER_BLOCK,
    MAX_PENDING,
    STATE_SIZE,
    Counters,
    State,
    decode_state,
    encode_state,
)
from amr.store import SlotStore, StoreFault, pack_record

S = ord("S")
LIMIT = 0xFFFFFFFF
RECORD_LEN = len(pack_record(S, 0, b"\x00" * STATE_SIZE))


def fault_reason(fn, *args):
    try:
        fn(*args)
    except StoreFault as e:
        assert str(e).startswith(e.reason)
        return e.reason
    raise AssertionError(f"no StoreFault from {fn!r}")


def provision(hwm=0, pending=None):
    backend = MemBackend()
    SlotStore(backend, S).save(encode_state(State(hwm, pending or [])))
    return backend


def boot(backend, resume_at=None):
    store = SlotStore(backend, S)
    return Counters(store, decode_state(store.load()), resume_at)


def persisted(backend):
    return decode_state(SlotStore(backend, S).load())


def raw_state(version=1, count=0, hwm=0, ids=(0, 0, 0, 0)):
    import struct

    return struct.pack("<BBI4I", version, count, hwm, *ids)


# --- layout and validation ---------------------------------------------------


def test_round_trip_and_fixed_layout():
    for hwm, pending in ((0, []), (64, [3]), (LIMIT, [1, 2, 3, LIMIT - 1]), (9, [0, 8])):
        payload = encode_state(State(hwm, pending))
        assert len(payload) == STATE_SIZE
        state = decode_state(payload)
        assert state.counter_hwm == hwm
        assert state.pending == pending
    assert encode_state(State(0x01020304, [7])) == (
        b"\x02\x01\x04\x03\x02\x01\x07\x00\x00\x00" + b"\x00" * 12
    )


def test_test_presses_are_marked_in_the_record_and_version_1_still_reads():
    state = State(100, [5, 9, 12], [9])
    payload = encode_state(state)
    assert payload[1] == 3 | 0b010 << 4  # count 3, pending[1] is a test press
    back = decode_state(payload)
    assert back.pending == [5, 9, 12] and back.tests == [9]
    old = raw_state(version=1, count=2, hwm=100, ids=(5, 9, 0, 0))
    assert decode_state(old).pending == [5, 9] and decode_state(old).tests == []
    bad = raw_state(version=2, count=1 | 0b10 << 4, hwm=100, ids=(5, 0, 0, 0))
    assert "test mask" in fault_reason(decode_state, bad)
    assert "not pending" in fault_reason(encode_state, State(100, [5], [7]))


def test_a_test_press_is_persisted_as_one_and_leaves_with_its_ack():
    backend = provision()
    c = boot(backend)
    alert = c.raise_alert()
    test = c.raise_alert(test=True)
    state = persisted(backend)
    assert state.pending == [alert, test] and state.tests == [test]
    assert c.acknowledge(test)
    state = persisted(backend)
    assert state.pending == [alert] and state.tests == []


def test_decode_names_each_bad_field():
    good = raw_state(count=2, hwm=100, ids=(5, 9, 0, 0))
    assert decode_state(good).pending == [5, 9]
    cases = (
        (good[:-1], "state length 21"),
        (good + b"\x00", "state length 23"),
        (b"", "state length 0"),
        (raw_state(version=3), "state version 3"),
        (raw_state(count=5, hwm=100, ids=(1, 2, 3, 4)), "pending count 5"),
        (raw_state(count=255, hwm=100), "pending count 255"),
        (raw_state(count=1, hwm=5, ids=(5, 0, 0, 0)), "pending[0]=5 not below counter_hwm=5"),
        (raw_state(count=2, hwm=0, ids=(0, 1, 0, 0)), "counter_hwm=0"),
        (raw_state(count=2, hwm=100, ids=(5, 5, 0, 0)), "pending[1]=5 duplicate"),
        (raw_state(count=3, hwm=100, ids=(5, 9, 7, 0)), "pending[2]=7 older"),
        (raw_state(count=2, hwm=100, ids=(5, 9, 1, 0)), "pending[2] set beyond"),
        (raw_state(count=0, hwm=100, ids=(0, 0, 0, 1)), "pending[3] set beyond"),
    )
    for payload, expected in cases:
        reason = fault_reason(decode_state, payload)
        assert expected in reason, (expected, reason)
        assert reason.startswith("state "), reason


def test_encode_refuses_what_decode_would_reject():
    for state, expected in (
        (State(10, [1, 2, 3, 4, 5]), "pending count 5"),
        (State(10, [10]), "pending[0]=10 not below"),
        (State(10, [3, 3]), "duplicate"),
        (State(10, [4, 3]), "older"),
        (State(LIMIT + 1, []), "counter_hwm"),
        (State(-1, []), "counter_hwm"),
    ):
        assert expected in fault_reason(encode_state, state)


# --- allocator ----------------------------------------------------------------


def test_take_persists_the_block_before_returning():
    backend = provision()
    unit = boot(backend)
    for _ in range(3 * COUNTER_BLOCK + 5):
        writes = backend.writes
        n = unit.take()
        # Whatever happens next, a reboot resumes above n.
        assert persisted(backend).counter_hwm > n
        assert backend.writes - writes == (1 if n % COUNTER_BLOCK == 0 else 0)
    assert unit.next == 3 * COUNTER_BLOCK + 5


def test_counters_are_consecutive_and_start_at_hwm():
    unit = boot(provision(hwm=1000))
    assert [unit.take() for _ in range(5)] == [1000, 1001, 1002, 1003, 1004]
    assert unit.state.counter_hwm == 1000 + COUNTER_BLOCK


def test_wear_exact_bound():
    for n in (0, 1, 63, 64, 65, 128, 129, 1000, 4096):
        backend = provision()
        unit = boot(backend)
        before = backend.writes
        for _ in range(n):
            unit.take()
        expected = (n + COUNTER_BLOCK - 1) // COUNTER_BLOCK
        assert unit.writes == expected, (n, unit.writes)
        assert backend.writes - before == expected


def test_deep_sleep_resume_costs_no_write():
    backend = provision()
    unit = boot(backend)
    seen = []
    for _ in range(12):  # 12 wakes of 5 frames each, all inside one block
        for _ in range(5):
            seen.append(unit.take())
        unit = boot(backend, unit.next)
    assert seen == list(range(60))
    assert backend.writes == 2  # provisioning + one block


def test_power_loss_skips_rest_of_block_only():
    backend = provision()
    unit = boot(backend)
    for _ in range(10):
        unit.take()
    unit = boot(backend)  # power loss: RTC memory gone
    assert unit.take() == COUNTER_BLOCK


def test_resume_at_outside_valid_range_is_ignored():
    backend = provision(hwm=128, pending=[70])
    for resume_at, expected in (
        (None, 128),
        (100, 100),
        (71, 71),
        (128, 128),
        (129, 128),  # above hwm: not from this state
        (70, 128),  # would reuse the pending alert's id
        (3, 128),
        (-1, 128),
    ):
        assert boot(backend, resume_at).next == expected, resume_at


def test_raise_alert_writes_once_and_renews_block():
    backend = provision()
    unit = boot(backend)
    unit.take()  # block 0..63 reserved
    writes = backend.writes
    alert = unit.raise_alert()
    assert alert == 1
    assert backend.writes == writes + 1
    state = persisted(backend)
    assert state.pending == [1]
    assert state.counter_hwm == 1 + COUNTER_BLOCK
    # The retry burst after the alert needs no further write for a block.
    assert [unit.take() for _ in range(COUNTER_BLOCK - 1)] == list(range(2, 1 + COUNTER_BLOCK))
    assert backend.writes == writes + 1
    assert unit.writes == 2


def test_raise_alert_survives_power_loss():
    backend = provision()
    unit = boot(backend)
    alert = unit.raise_alert()
    rebooted = boot(backend)
    assert rebooted.state.pending == [alert]
    assert rebooted.take() > alert


def test_full_pending_evicts_second_oldest_and_reports_it():
    backend = provision()
    unit = boot(backend)
    alerts = [unit.raise_alert() for _ in range(MAX_PENDING)]
    assert unit.evicted is None
    assert unit.dropped == 0
    newest = unit.raise_alert()
    assert unit.evicted == alerts[1]
    assert unit.dropped == 1
    expected = alerts[:1] + alerts[2:]
    expected.append(newest)
    assert unit.state.pending == expected
    assert persisted(backend).pending == expected
    unit.raise_alert()
    assert unit.evicted == alerts[2]
    assert unit.dropped == 2
    assert unit.state.pending[0] == alerts[0]  # when the emergency began
    unit.acknowledge(alerts[0])
    unit.raise_alert()
    assert unit.evicted is None


def test_acknowledge():
    backend = provision()
    unit = boot(backend)
    a = unit.raise_alert()
    b = unit.raise_alert()
    writes = backend.writes
    assert not unit.acknowledge(12345)
    assert backend.writes == writes
    assert unit.acknowledge(a)
    assert backend.writes == writes + 1
    assert persisted(backend).pending == [b]
    assert not unit.acknowledge(a)
    assert unit.acknowledge(b)
    assert persisted(backend).pending == []


def test_counters_exhausted_never_wrap():
    backend = provision(hwm=LIMIT - 3)
    unit = boot(backend)
    assert [unit.take() for _ in range(3)] == [LIMIT - 3, LIMIT - 2, LIMIT - 1]
    assert persisted(backend).counter_hwm == LIMIT
    writes = backend.writes
    assert fault_reason(unit.take) == "counters exhausted"
    assert fault_reason(unit.raise_alert) == "counters exhausted"
    assert backend.writes == writes
    assert fault_reason(boot(backend).take) == "counters exhausted"


def test_alert_at_end_of_counter_space():
    unit = boot(provision(hwm=LIMIT - 1))
    assert unit.raise_alert() == LIMIT - 1
    assert unit.state.counter_hwm == LIMIT
    assert fault_reason(unit.take) == "counters exhausted"


def test_failed_save_changes_nothing():
    class Failing(MemBackend):
        fail = False

        def write(self, slot, data):
            if self.fail:
                raise OSError(28)
            MemBackend.write(self, slot, data)

    backend = Failing()
    SlotStore(backend, S).save(encode_state(State()))
    unit = boot(backend)
    backend.fail = True
    for op in (unit.take, unit.raise_alert):
        try:
            op()
        except StoreFault:
            pass
        else:
            raise AssertionError("write error swallowed")
        assert unit.next == 0
        assert unit.state.counter_hwm == 0
        assert unit.state.pending == []
        assert unit.writes == 0
    backend.fail = False
    assert unit.take() == 0
    assert unit.writes == 1


def test_an_alarm_the_flash_refuses_is_raised_in_ram_if_its_block_is_reserved():
    class Failing(MemBackend):
        fail = False

        def write(self, slot, data):
            if self.fail:
                raise OSError(-0x1105)
            MemBackend.write(self, slot, data)

    backend = Failing()
    SlotStore(backend, S).save(encode_state(State()))
    unit = boot(backend)
    assert unit.take() == 0  # reserves the block 0..63 in flash
    backend.fail = True
    alert = unit.raise_alert()
    assert alert == 1 and unit.unsaved == [1] and unit.state.pending == [1]
    assert unit.write_fault.reason == "write failed"
    assert unit.take() == 2  # its frames use counters of the persisted block
    assert boot(backend).state.pending == []  # not in flash: a reboot would lose it
    assert unit.acknowledge(alert)  # acknowledged: dropped from RAM, nothing written
    assert unit.unsaved == [] and unit.state.pending == []
    # Once the flash takes writes again, a RAM-only alert is written with the next save.
    second = unit.raise_alert()
    backend.fail = False
    unit.take()
    while unit.next < unit.state.counter_hwm:
        unit.take()
    unit.take()  # renews the block: the save carries the pending list
    assert unit.unsaved == [] and boot(backend).state.pending == [second]


# --- power cuts ---------------------------------------------------------------


class History:
    """Drives a unit through ops, rebooting after every power cut.

    Checks, over the whole history, that no counter (frame counter or alert
    id) is handed out twice and that every raised alert is still pending
    after each boot unless it was acknowledged or evicted.
    """

    def __init__(self, backend):
        self.backend = backend
        self.taken = set()  # counters returned by take()
        self.alerts = set()  # ids returned by raise_alert()
        self.must_pend = []
        self.cuts = 0
        self.boot(None)

    def boot(self, resume_at):
        self.unit = boot(self.backend, resume_at)
        pending = self.unit.state.pending
        for alert in self.must_pend:
            assert alert in pending, f"alert {alert} lost"
        for alert in pending:
            assert alert not in self.taken, f"alert id {alert} was also a frame counter"

    def fresh(self, n):
        assert n not in self.taken and n not in self.alerts, f"counter {n} reused"

    def step(self, op, arg):
        unit = self.unit
        if op == "take":
            for _ in range(arg):
                n = unit.take()
                self.fresh(n)
                self.taken.add(n)
        elif op == "alert":
            if len(unit.state.pending) == MAX_PENDING:
                # May be evicted by design; the new alert must not be lost.
                self._forget(unit.state.pending[1])
            n = unit.raise_alert()
            self.fresh(n)
            self.alerts.add(n)
            self.must_pend.append(n)
        elif op == "ack":
            pending = unit.state.pending
            if pending:
                alert = pending[arg % len(pending)]
                self._forget(alert)  # an ack may land or not when the power fails
                assert unit.acknowledge(alert)
        elif op == "sleep":
            self.boot(unit.next)
        else:  # "reset": power loss outside any write
            self.boot(None)

    def _forget(self, alert):
        if alert in self.must_pend:
            self.must_pend.remove(alert)

    def run(self, ops):
        # Ends with a power loss and more than a block of frames, to show the
        # counters after the last boot are fresh too.
        steps = list(ops)
        steps.extend((("reset", 0), ("take", COUNTER_BLOCK + 1)))
        for op, arg in steps:
            try:
                self.step(op, arg)
            except PowerCut:
                self.cuts += 1
                self.boot(None)
        self.boot(None)


SCRIPT = (
    ("take", 3),
    ("alert", 0),
    ("take", 70),
    ("sleep", 0),
    ("take", 5),
    ("alert", 0),
    ("ack", 0),
    ("reset", 0),
    ("take", 64),
    ("alert", 0),
    ("alert", 0),
    ("sleep", 0),
    ("take", 1),
    ("ack", 1),
    ("take", 130),
    ("alert", 0),
    ("alert", 0),
    ("alert", 0),  # pending full: evicts
    ("ack", 0),
    ("take", 2),
)


def test_power_cut_at_every_write_and_byte():
    clean = provision()
    start = clean.writes
    History(clean).run(SCRIPT)
    total = clean.writes - start
    assert total >= 12, total
    runs = 0
    for at in range(total):
        for mode, offset in cut_points(RECORD_LEN):
            backend = provision()
            backend.arm(backend.writes + at, mode, offset)
            history = History(backend)
            history.run(SCRIPT)
            assert history.cuts == 1, (at, mode, offset)
            runs += 1
    assert runs == total * (3 * RECORD_LEN + 2)


def test_random_histories_with_repeated_cuts():
    rng = random.Random(20240611) if hasattr(random, "Random") else None
    if rng is None:
        random.seed(20240611)
        rng = random
    modes = ("before", "after", "trunc", "overlay", "erased")
    ops = ("take", "take", "take", "alert", "ack", "sleep", "reset")
    for _ in range(150):
        backend = provision()
        for _ in range(rng.randint(0, 6)):
            backend.arm(
                backend.writes + rng.randint(0, 25),
                rng.choice(modes),
                rng.randint(0, RECORD_LEN - 1),
            )
        history = History(backend)
        script = []
        for _ in range(rng.randint(1, 40)):
            op = rng.choice(ops)
            script.append((op, rng.randint(1, 90) if op == "take" else rng.randint(0, 3)))
        history.run(script)


def test_an_alert_id_is_never_0():
    # A frame's alert id 0 means "no alert" (docs/protocol.md 3.4): a fresh
    # unit's first alarm skips counter 0, which no frame then uses.
    unit = boot(provision())
    assert unit.next == 0
    assert unit.raise_alert(test=True) == 1
    assert unit.take() == 2
