"""Fuzzing the frame parser: amrkit.protocol's split and decode and the
Receiver's feed, with random payloads, valid frames mutated and bit-flipped
ones. Any payload is rejected with a FrameError reason (counted by the
receiver), never another exception; a frame that verifies keeps the field
rules of protocol sections 3.4-3.5."""

from __future__ import annotations

from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

from amrkit.protocol import Frame, Kind, encode

SEEDS = dict(fh.corpus("frame"))
# Seeds that verify but break a field rule (the receiver must reject them).
OUT_OF_SPEC = {"battery-101-percent.bin", "flags-bit-7.bin", "heartbeat-with-alert-id.bin"}


def test_frame_corpus() -> None:
    target = fh.FrameTarget()
    kinds = {name: target(data).kind for name, data in SEEDS.items()}
    assert set(kinds.values()) <= {"ok", "error"}, kinds
    assert kinds["alert-counter-2.bin"] == "ok"
    assert kinds["mic-bit-flipped.bin"] == kinds["empty.bin"] == "error"


def test_frame_corpus_keeps_the_field_rules() -> None:
    target = fh.FrameTarget(strict=True)
    for name in sorted(OUT_OF_SPEC):
        assert target(SEEDS[name]).kind == "error", name


@st.composite
def flipped(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(SEEDS.values()))))
    for at in draw(st.lists(st.integers(0, 255), min_size=1, max_size=4)):
        if data:
            data[at % len(data)] ^= 1 << (at % 8)
    return bytes(data)


PAYLOAD = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=29, max_size=29).map(lambda b: b"\x1e\xff" + b),
    flipped(),
)


@settings(max_examples=300, deadline=None)
@given(ad=PAYLOAD)
def test_frame_property(ad: bytes) -> None:
    outcome = fh.FrameTarget()(ad)
    assert outcome.kind in ("ok", "error"), outcome


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(list(Kind)),
    counter=st.integers(0, 3),
    alert_id=st.integers(0, 2**32 - 1),
    battery=st.integers(0, 255),
    flags=st.integers(0, 255),
)
def test_a_verified_frame_keeps_the_field_rules(
    kind: Kind, counter: int, alert_id: int, battery: int, flags: int
) -> None:
    frame = Frame(kind, counter, alert_id=alert_id, battery_pct=battery, flags=flags)
    outcome = fh.FrameTarget(strict=True)(encode(fh.frame_unit().keys, frame))
    assert outcome.kind in ("ok", "error"), outcome
