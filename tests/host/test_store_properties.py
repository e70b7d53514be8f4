"""Property tests (CPython, hypothesis) for the persistence format: records,
slot choice under torn writes, seq wrap, state and config payloads, and the
counter allocator under arbitrary power cuts."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from membackend import MemBackend, PowerCut

from amr.config import CONFIG_SIZE, DEFAULTS, FIELDS, decode_config, encode_config, validate
from amr.state import (
    COUNTER_BLOCK,
    MAX_PENDING,
    STATE_SIZE,
    Counters,
    State,
    decode_state,
    encode_state,
)
from amr.store import (
    MAX_PAYLOAD,
    OVERHEAD,
    SlotStore,
    StoreFault,
    newer,
    pack_record,
    unpack_record,
)

U32 = 0xFFFFFFFF
KIND = ord("S")
payloads = st.binary(max_size=MAX_PAYLOAD)
seqs = st.integers(0, U32)
cuts = st.tuples(
    st.sampled_from(["before", "after", "trunc", "overlay", "erased"]),
    st.integers(0, OVERHEAD + MAX_PAYLOAD - 1),
)


# --- records -----------------------------------------------------------------


@given(st.integers(0, 255), seqs, payloads)
def test_record_round_trip(kind: int, seq: int, payload: bytes) -> None:
    record = pack_record(kind, seq, payload)
    assert len(record) == OVERHEAD + len(payload)
    assert unpack_record(record, kind) == (seq, payload)
    assert unpack_record(record, (kind + 1) % 256) is None


@given(st.binary(max_size=300))
def test_unpack_any_bytes_is_none_or_canonical(data: bytes) -> None:
    got = unpack_record(data, KIND)
    if got is not None:
        assert pack_record(KIND, *got) == data


@given(seqs, payloads, st.data())
def test_any_single_byte_change_is_detected(seq: int, payload: bytes, data: Any) -> None:
    record = bytearray(pack_record(KIND, seq, payload))
    offset = data.draw(st.integers(0, len(record) - 1))
    record[offset] ^= data.draw(st.integers(1, 255))
    assert unpack_record(bytes(record), KIND) is None


@given(seqs, st.integers(1, 2**31 - 1))
def test_serial_order(a: int, gap: int) -> None:
    b = (a + gap) & U32
    assert newer(b, a)
    assert not newer(a, b)
    assert not newer(a, a)


# --- slot store ----------------------------------------------------------------


@given(seqs, st.lists(payloads, min_size=1, max_size=6))
def test_load_returns_last_save_across_wrap(start: int, saved: list[bytes]) -> None:
    backend = MemBackend()
    backend.slots[1] = pack_record(KIND, start, b"start")
    store = SlotStore(backend, KIND)
    for i, payload in enumerate(saved, 1):
        store.save(payload)
        fresh = SlotStore(backend, KIND)
        assert fresh.load() == payload
        assert fresh.seq == store.seq == (start + i) & U32


@given(st.lists(payloads, min_size=1, max_size=5), payloads, cuts)
def test_torn_save_loads_old_or_new(history: list[bytes], new: bytes, cut: Any) -> None:
    backend = MemBackend()
    store = SlotStore(backend, KIND)
    for payload in history:
        store.save(payload)
    old = history[-1]
    mode, offset = cut
    backend.arm(backend.writes, mode, offset % (OVERHEAD + len(new)))
    with pytest.raises(PowerCut):
        store.save(new)
    rebooted = SlotStore(backend, KIND)
    got = rebooted.load()
    assert (got == new) if mode == "after" else (got in (old, new))
    if got == new and mode != "after":
        # Only possible when the torn bytes happen to form the whole record.
        assert pack_record(KIND, rebooted.seq, new) in backend.slots
    rebooted.save(b"next")
    assert SlotStore(backend, KIND).load() == b"next"


@given(st.binary(max_size=40), st.binary(max_size=40), payloads)
def test_garbage_slots_fault_then_provision(a: bytes, b: bytes, payload: bytes) -> None:
    backend = MemBackend()
    backend.slots = [a, b]
    store = SlotStore(backend, KIND)
    try:
        store.load()
    except StoreFault as e:
        assert e.reason == "corrupt"
        assert store.damaged == 2
    store.save(payload)
    assert SlotStore(backend, KIND).load() == payload


# --- state payload -----------------------------------------------------------------


@st.composite
def states(draw: Any) -> State:
    hwm = draw(st.integers(0, U32))
    ids = draw(st.sets(st.integers(0, max(hwm - 1, 0)), max_size=min(MAX_PENDING, hwm)))
    return State(hwm, sorted(ids))


@given(states())
def test_state_round_trip(state: State) -> None:
    payload = encode_state(state)
    assert len(payload) == STATE_SIZE
    back = decode_state(payload)
    assert (back.counter_hwm, back.pending) == (state.counter_hwm, state.pending)


@given(st.binary(min_size=STATE_SIZE, max_size=STATE_SIZE))
def test_state_decode_is_fault_or_canonical(payload: bytes) -> None:
    try:
        state = decode_state(payload)
    except StoreFault as e:
        assert e.reason.startswith("state ")
    else:
        assert encode_state(state) == payload


# --- config payload ----------------------------------------------------------------


@st.composite
def configs(draw: Any) -> dict[str, int]:
    cfg = {name: draw(st.integers(low, high)) for name, _, low, high in FIELDS}
    try:
        validate(cfg)
    except StoreFault:
        assume(False)
    return cfg


@settings(max_examples=300)
@given(configs())
def test_config_round_trip(cfg: dict[str, int]) -> None:
    payload = encode_config(cfg)
    assert len(payload) == CONFIG_SIZE
    assert decode_config(payload) == cfg


@given(st.binary(min_size=CONFIG_SIZE - 1, max_size=CONFIG_SIZE - 1))
def test_config_decode_is_fault_or_canonical(body: bytes) -> None:
    payload = b"\x01" + body
    try:
        cfg = decode_config(payload)
    except StoreFault as e:
        assert e.reason.startswith("config ")
    else:
        assert encode_config(cfg) == payload


@given(st.sampled_from([name for name, _, _, _ in FIELDS]), st.integers(0, 2**32 - 1))
def test_config_any_value_is_accepted_only_in_range(name: str, value: int) -> None:
    _, code, low, high = next(f for f in FIELDS if f[0] == name)
    cfg = dict(DEFAULTS, **{name: value})
    try:
        validate(cfg)
    except StoreFault as e:
        assert name in e.reason
    else:
        assert low <= value <= high
        if struct.calcsize("<" + code) < 4:
            assert value < 256 ** struct.calcsize("<" + code)


# --- counter allocator under power cuts -------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(1, 150)),
        st.tuples(st.sampled_from(["alert", "ack", "sleep", "reset"]), st.integers(0, 3)),
    ),
    max_size=30,
)
cut_plans = st.lists(st.tuples(st.integers(0, 30), cuts), max_size=5)


def _boot(backend: MemBackend, resume_at: int | None) -> Counters:
    store = SlotStore(backend, KIND)
    return Counters(store, decode_state(store.load()), resume_at)


@settings(max_examples=300, deadline=None)
@given(ops, cut_plans, st.integers(0, 2**20))
def test_no_counter_reused_no_alert_lost(
    script: list[tuple[str, int]], plan: list[tuple[int, Any]], hwm: int
) -> None:
    backend = MemBackend()
    SlotStore(backend, KIND).save(encode_state(State(hwm, [])))
    for at, (mode, offset) in plan:
        backend.arm(backend.writes + at, mode, offset % (OVERHEAD + STATE_SIZE))
    issued: set[int] = set()
    must_pend: list[int] = []

    def boot(resume_at: int | None) -> Counters:
        unit = _boot(backend, resume_at)
        assert all(alert in unit.state.pending for alert in must_pend)
        return unit

    def forget(alert: int) -> None:
        if alert in must_pend:
            must_pend.remove(alert)

    unit = boot(None)
    for op, arg in [*script, ("reset", 0), ("take", COUNTER_BLOCK + 1)]:
        try:
            if op == "take":
                for _ in range(arg):
                    n = unit.take()
                    assert n not in issued
                    issued.add(n)
            elif op == "alert":
                if len(unit.state.pending) == MAX_PENDING:
                    forget(unit.state.pending[1])  # may be evicted, by design
                n = unit.raise_alert()
                assert n not in issued
                issued.add(n)
                must_pend.append(n)
            elif op == "ack" and unit.state.pending:
                alert = unit.state.pending[arg % len(unit.state.pending)]
                forget(alert)  # the ack may or may not land if the power fails
                assert unit.acknowledge(alert)
            elif op == "sleep":
                unit = boot(unit.next)
            elif op == "reset":
                unit = boot(None)
        except PowerCut:
            unit = boot(None)
    boot(None)
