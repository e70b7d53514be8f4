"""Fuzzing the stored records under the unix port (tests/firmware/
fuzz_driver.py, one micropython for the module): config, provisioning and
counter-state payloads, the two-slot store, and whole flash contents read
by info and self_test. Mutated bytes give a fault with its reason, never a
crash, and never a record other than the one stored (a silent default)."""

from __future__ import annotations

import json

import pytest
from fuzz_unit import driver, judged, secrets, unit
from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

__all__ = ["driver", "secrets", "unit"]  # the module's fixtures

VALID = {"defaults.bin", "valid-generation-2.bin", "generation-max.bin", "fresh.bin"}


@pytest.mark.parametrize("target", ["config", "provisioning", "state"])
def test_payload_corpus(target: str, driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    for name, data in fh.corpus(target):
        kind = judged(fh.record_outcome(driver, target, data), secrets)
        if name in VALID:
            assert kind == "ok", name


def test_store_corpus(driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    for name, data in fh.corpus("store"):
        kind = json.loads(data)["kind"]
        outcome = fh.record_outcome(driver, "store", bytes((kind,)), *fh.slots_input(data))
        judged(outcome, secrets)
        if name == "both-empty.json":
            assert outcome.message == "missing"


def test_flash_corpus(driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    kinds = {
        name: judged(fh.nvs_outcome(driver, fh.slots_input(data)), secrets)
        for name, data in fh.corpus("nvs")
    }
    assert kinds["provisioned.json"] == "ok"
    assert kinds["provisioning-crc-flipped.json"] == "error"


def flipped(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a few bytes changed, cut or extended; or any bytes."""

    @st.composite
    def make(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 3))):
            if data and draw(st.booleans()):
                at = draw(st.integers(0, len(data) - 1))
                data[at] ^= draw(st.integers(1, 255))
            else:
                cut = draw(st.integers(0, len(data)))
                data = data[:cut] + draw(st.binary(max_size=4))
        return bytes(data)

    return st.one_of(make(), st.binary(max_size=120))


def seeds(target: str) -> list[bytes]:
    return [data for _name, data in fh.corpus(target)]


@settings(max_examples=150, deadline=None)
@given(data=flipped(seeds("config")))
def test_config_property(data: bytes, driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    judged(fh.record_outcome(driver, "config", data), secrets)


@settings(max_examples=150, deadline=None)
@given(data=flipped(seeds("provisioning")))
def test_provisioning_property(data: bytes, driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    judged(fh.record_outcome(driver, "provisioning", data), secrets)


@settings(max_examples=150, deadline=None)
@given(data=flipped(seeds("state")))
def test_state_property(data: bytes, driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    judged(fh.record_outcome(driver, "state", data), secrets)


RECORDS = [s for data in seeds("store") for s in fh.slots_input(data) if s]
SLOT = st.one_of(st.none(), flipped(RECORDS))


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from([0x50, 0x53, 0x42]), slot0=SLOT, slot1=SLOT)
def test_store_property(
    kind: int,
    slot0: bytes | None,
    slot1: bytes | None,
    driver: fh.FirmwareDriver,
    secrets: fh.Secrets,
) -> None:
    judged(fh.record_outcome(driver, "store", bytes((kind,)), slot0, slot1), secrets)


@settings(max_examples=60, deadline=None)
@given(slots=st.lists(SLOT, min_size=6, max_size=6))
def test_flash_property(
    slots: list[bytes | None], driver: fh.FirmwareDriver, secrets: fh.Secrets
) -> None:
    judged(fh.nvs_outcome(driver, slots), secrets)
