"""Fuzzing capture lines (amrkit.listen.capture_source): a line that is not
{"t": seconds, "ad": hex, "rssi": dBm} is a CaptureError saying which line
and why, never another exception; a line it takes gives finite seconds,
bytes and an int (or no) RSSI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

SEEDS = dict(fh.corpus("capture-seeds"))
# Lines the parser takes although the format has no word for them.
ILL_TYPED = {
    "t-nan.jsonl",
    "t-text-infinity.jsonl",
    "t-1e999.jsonl",
    "rssi-text.jsonl",
    "t-bool.jsonl",
}


def outcome(data: bytes) -> fh.Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        return fh.capture_outcome(fh.FileTarget(Path(tmp)), data)


def test_capture_corpus() -> None:
    for name, data in sorted(SEEDS.items()):
        if name not in ILL_TYPED:
            assert outcome(data).kind in ("ok", "error"), name
    assert outcome(SEEDS["valid.jsonl"]).kind == "ok"


def test_capture_lines_of_the_wrong_type_are_refused() -> None:
    for name in sorted(ILL_TYPED):
        assert outcome(SEEDS[name]).kind == "error", name


VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=31).map(bytes.hex),
    st.lists(st.integers(), max_size=2),
)
LINE = st.one_of(
    st.dictionaries(st.sampled_from(["t", "ad", "rssi", "x"]), VALUE).map(json.dumps),
    st.text(max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=3))
def test_capture_property(lines: list[str]) -> None:
    result = outcome("\n".join(lines).encode(errors="surrogatepass"))
    assert (
        result.kind != "crash" or "not seconds" in result.message or "not dBm" in result.message
    ), result


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=3))
def test_capture_property_well_typed(lines: list[str]) -> None:
    result = outcome("\n".join(lines).encode(errors="surrogatepass"))
    assert result.kind in ("ok", "error"), result
