"""Fuzzing receiver bundles (amrkit.bundle.read_bundle): mutated bundle
files give their units or a BundleError that says why, never another
exception, and never a key or the passphrase in the message."""

from __future__ import annotations

import json
from pathlib import Path

from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

SEEDS = dict(fh.corpus("bundle-seeds"))
QUICK = [data for data in SEEDS.values() if b'"n": 32768' not in data]  # no real scrypt cost


def judged(outcome: fh.Outcome) -> str:
    assert outcome.kind in ("ok", "error"), outcome
    assert not fh.secrets_for(fh.frame_unit()).leaked(outcome.output), outcome.message
    return outcome.kind


def test_bundle_corpus(tmp_path: Path) -> None:
    files = fh.FileTarget(tmp_path)
    kinds = {name: judged(fh.bundle_outcome(files, data)) for name, data in sorted(SEEDS.items())}
    assert kinds["valid-as-written.json"] == kinds["valid-scrypt-n16.json"] == "ok"
    assert kinds["wrong-passphrase.json"] == "error"


ODD: list[object] = [None, 0, -1, 2**40, "", "zz", "00", [], {}, 1.5, True]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A quick seed with one value replaced, or its bytes changed."""
    data = draw(st.sampled_from(QUICK))
    if draw(st.booleans()):
        try:
            document = json.loads(data)
        except ValueError:  # a seed that is not JSON: change its bytes instead
            document = None
        if isinstance(document, dict) and document:
            where = document
            key = draw(st.sampled_from(sorted(document)))
            if key == "kdf" and isinstance(document[key], dict) and draw(st.booleans()):
                where = document[key]
                key = draw(st.sampled_from(sorted(where)))
            where[key] = draw(st.sampled_from(ODD))
            return json.dumps(document).encode()
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(max_size=3)) + data[at + 1 :]


@settings(max_examples=120, deadline=None)
@given(data=mutated())
def test_bundle_property(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        judged(fh.bundle_outcome(fh.FileTarget(Path(tmp)), data))
