"""Fuzzing what a host can write to the service session's GATT handles
(amr/gatt.py), under the unix port: the write handler and the session's
command parsing (amr/service_mode.py) as the stack hands them a write, on a
provisioned twin unit (tests/firmware/fuzz_driver.py). Only an
authenticated host's write to the control point is run; it gets one JSON
reply in chunks, an error if the write was not a command the air may run,
never a key. (Over the twin's radio: tests/host/test_fuzz_twin.py.)"""

from __future__ import annotations

from fuzz_unit import driver, judged, secrets, unit
from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

__all__ = ["driver", "secrets", "unit"]  # the module's fixtures

CONTROL = 5  # the control point's index among the session's handles
WIRED_ONLY = ("provision", "wipe", "test_mode", "service")


def test_control_point_corpus(driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    for name, data in fh.corpus("control_point"):
        outcome = fh.gatt_outcome(driver, 1, CONTROL, True, data)
        judged(outcome, secrets)
        if name.startswith(WIRED_ONLY):
            assert "wired link only" in outcome.message, (name, outcome)
        if name in ("info.bin", "challenge-16-byte-nonce.bin", "bonds.bin"):
            assert outcome.kind == "ok", (name, outcome)


def test_writes_of_untrusted_hosts_and_to_other_handles_are_not_run(
    driver: fh.FirmwareDriver, secrets: fh.Secrets
) -> None:
    for handle in range(8):
        for trusted in (False, True):
            outcome = fh.gatt_outcome(driver, 2, handle, trusted, b"clear_bonds")
            judged(outcome, secrets)
            run = trusted and handle == CONTROL
            assert ('"cleared"' in outcome.output) is run, (handle, trusted, outcome)


SEEDS = [data for _name, data in fh.corpus("control_point")]
VALUE = st.one_of(
    st.binary(max_size=600),
    st.tuples(st.sampled_from(SEEDS), st.binary(max_size=40)).map(lambda p: p[0] + p[1]),
    st.tuples(st.sampled_from(fh.WIRED_NAMES), st.binary(max_size=70)).map(
        lambda p: p[0].encode() + b"\x00" + p[1]
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    value=VALUE,
    handle=st.one_of(st.just(CONTROL), st.integers(0, 40)),
    trusted=st.booleans(),
    conn=st.integers(0, 3),
)
def test_control_point_property(
    value: bytes,
    handle: int,
    trusted: bool,
    conn: int,
    driver: fh.FirmwareDriver,
    secrets: fh.Secrets,
) -> None:
    judged(fh.gatt_outcome(driver, conn, handle, trusted, value), secrets)
