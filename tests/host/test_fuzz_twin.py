"""Fuzzing twin units as tools reach them, on one `amr sim` fleet: wired
commands over a unit's serial port (WiredLink, the raw REPL), writes to the
control point over the twin's radio (a paired BleLink), and the sim's
control port, one connection for many lines. Every input is answered (a
reply or an error that says what was wrong); neither the sim nor any unit
dies of it, and no key is ever said."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import fh
from hypothesis import given, settings
from hypothesis import strategies as st

from amrkit.boards import load_board
from amrkit.twin.sim import Sim

# The serial port gets the seeds that leave the unit as it was (a provision
# or a wipe would change the keys the radio test pairs with).
SERIAL_SKIP = ("provision-next", "provision-forced", "provision-generation-0", "wipe.", "service")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    directory = tmp_path_factory.mktemp("fuzz") / "fleet"
    with Sim(2, load_board(), directory, command_timeout_s=fh.COMMAND_TIMEOUT_S) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def secrets(sim: Sim) -> fh.Secrets:
    return fh.secrets_for(*[u.known for u in sim.units.values() if u.known], fh.frame_unit())


def judged(outcome: fh.Outcome, secrets: fh.Secrets) -> str:
    assert outcome.kind in ("ok", "error"), outcome
    assert not secrets.leaked(outcome.output), outcome.message
    return outcome.kind


def test_wired_corpus_over_the_serial_port(sim: Sim, secrets: fh.Secrets) -> None:
    from amrkit.unit.wired import WiredLink

    seeds = [
        (name, fh.wired_input(data))
        for name, data in fh.corpus("wired")
        if not name.startswith(SERIAL_SKIP)
    ]

    async def run() -> list[tuple[str, fh.Outcome]]:
        async with WiredLink(str(sim.units["unit-1"].announce()["serial"])) as link:
            out = []
            for name, (command, arg_hex) in seeds:
                arg = fh.serial_arg(random.Random(0), arg_hex)
                out.append((name, await fh.serial_outcome(link, command, arg)))
            out.append(("info after", await fh.serial_outcome(link, "info", None)))
            return out

    outcomes = asyncio.run(run())
    assert len(outcomes) > 20
    for name, outcome in outcomes:
        assert judged(outcome, secrets) in ("ok", "error"), name
    assert outcomes[-1][1].kind == "ok"


def test_control_point_seeds_over_the_radio(sim: Sim, secrets: fh.Secrets) -> None:
    seeds = [data for _name, data in fh.corpus("control_point")][:8]
    result = asyncio.run(fh.radio_campaign(sim, "unit-2", seeds, len(seeds), secrets))
    assert result["inputs"] == len(seeds)
    assert result["crashes"] == result["hangs"] == 0, result
    assert not result["secret_seen"]
    assert result["answers_after"] is True


@pytest.fixture(scope="module")
def connection(sim: Sim) -> Iterator[fh.ControlConnection]:
    link = fh.ControlConnection(sim.control)
    yield link
    link.close()


def test_control_port_corpus(
    sim: Sim, connection: fh.ControlConnection, secrets: fh.Secrets
) -> None:
    for name, data in fh.corpus("control"):
        outcome = connection(data.strip())
        judged(outcome, secrets)
        if name.startswith(("status", "battery.", "radio-loss")):
            assert outcome.kind == "ok", (name, outcome)
        if "huge" in name or "infinite" in name or "is-a" in name or "negative" in name:
            assert outcome.kind == "error", (name, outcome)
    assert connection.reconnects == 0
    assert fh.sim_alive(sim)


SEEDS = [data.strip() for _name, data in fh.corpus("control")]


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_control_port_property(
    rng: random.Random, sim: Sim, connection: fh.ControlConnection, secrets: fh.Secrets
) -> None:
    line = fh.control_line(rng, list(sim.units), SEEDS)
    judged(connection(line), secrets)
    assert connection.reconnects == 0


def test_the_fleet_outlives_the_fuzzing(sim: Sim, connection: fh.ControlConnection) -> None:
    assert fh.sim_alive(sim)
    assert connection(b'{"cmd": "status"}').kind == "ok"
    assert Path(sim.directory).exists()
