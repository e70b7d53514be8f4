"""A provisioned twin unit's directory and the unix-port fuzz driver on it,
for the firmware fuzz tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import fh

from amrkit.protocol import KnownUnit


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KnownUnit]:
    return fh.unit_dir_for_firmware(tmp_path_factory.mktemp("fuzz") / "unit")


@pytest.fixture(scope="module")
def driver(unit: tuple[Path, KnownUnit]) -> Iterator[fh.FirmwareDriver]:
    with fh.FirmwareDriver(unit[0]) as running:
        yield running


@pytest.fixture(scope="module")
def secrets(unit: tuple[Path, KnownUnit]) -> fh.Secrets:
    """The unit's keys, those the corpus provisions, and the secrets."""
    return fh.secrets_for(unit[1], fh.frame_unit())


def judged(outcome: fh.Outcome, secrets: fh.Secrets) -> str:
    """ok or error, never a crash or a hang, and no secret said."""
    assert outcome.kind in ("ok", "error"), outcome
    assert not secrets.leaked(outcome.output), outcome.message
    return outcome.kind
