"""Fuzzing the wired service commands as the raw REPL runs them,
amr.commands.wired(name, arg_hex), under the unix port on a provisioned
twin unit (tests/firmware/fuzz_driver.py, one micropython for the module):
any name and any argument text get one JSON object back, an error saying
what was wrong if it was, and never a key. (Over a twin unit's serial port:
tests/host/test_fuzz_twin.py.)"""

from __future__ import annotations

from fuzz_unit import driver, judged, secrets, unit
from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

__all__ = ["driver", "secrets", "unit"]  # the module's fixtures

REFUSED = {
    "challenge-short-nonce.json": "16-byte nonce",
    "challenge-odd-hex.json": "not hex digits",
    "challenge-no-argument.json": "needs an argument",
    "provision-empty.json": "provisioning length 0",
    "test_mode-too-long.json": "at most 600 s",
    "info-with-argument.json": "takes no argument",
    "unknown-name.json": "unknown command",
    "empty-name.json": "unknown command",
}


def test_wired_corpus(driver: fh.FirmwareDriver, secrets: fh.Secrets) -> None:
    for name, data in fh.corpus("wired"):
        outcome = fh.wired_outcome(driver, *fh.wired_input(data))
        judged(outcome, secrets)
        if name in REFUSED:
            assert REFUSED[name] in outcome.message, (name, outcome)
        if name in ("info.json", "challenge-16-byte-nonce.json", "provision-next-generation.json"):
            assert outcome.kind == "ok", (name, outcome)


HEX = st.binary(max_size=100).map(bytes.hex)
ARG = st.one_of(st.none(), HEX, st.text(max_size=60), HEX.map(lambda h: h[:-1] + " "))
NAME = st.one_of(st.sampled_from(fh.WIRED_NAMES), st.text(max_size=30))


@settings(max_examples=200, deadline=None)
@given(name=NAME, arg=ARG)
def test_wired_property(
    name: str, arg: str | None, driver: fh.FirmwareDriver, secrets: fh.Secrets
) -> None:
    judged(fh.wired_outcome(driver, name, arg), secrets)
