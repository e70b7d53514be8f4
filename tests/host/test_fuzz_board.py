"""Fuzzing board profiles: mutated TOML read as a board
(amrkit.boards.load_profile, what load_board reads) gives a Board or a
ProfileError naming what is wrong, never another exception."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

SEEDS = dict(fh.corpus("board"))


def test_board_corpus(tmp_path: Path) -> None:
    files = fh.FileTarget(tmp_path)
    kinds = {}
    for name, data in sorted(SEEDS.items()):
        outcome = fh.board_outcome(files, data, name="esp32c3-coin")
        assert outcome.kind in ("ok", "error"), (name, outcome)
        kinds[name] = outcome.kind
    assert kinds["esp32c3-coin.toml"] == "ok"
    assert kinds["not-utf8.toml"] == kinds["empty.toml"] == "error"


@settings(max_examples=200, deadline=None)
@given(seed=st.sampled_from(sorted(SEEDS)), rng=st.randoms(use_true_random=False))
def test_board_property(seed: str, rng: random.Random) -> None:
    data = SEEDS[seed]
    if rng.randrange(4):
        data = fh.mutate_toml(rng, data.decode(errors="replace")).encode()
    else:
        data = fh.mutate(rng, data, list(SEEDS.values()))
    with tempfile.TemporaryDirectory() as tmp:
        outcome = fh.board_outcome(fh.FileTarget(Path(tmp)), data, name=seed.removesuffix(".toml"))
    assert outcome.kind in ("ok", "error"), outcome
