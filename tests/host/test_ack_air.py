"""`amr listen --ack` against a twin unit with cover traffic on, over the
twin's radio, with an observer recording everything on the air: each
acknowledgement from an address of its own, the unit still hearing its
alerts' tags, and routine sequences answered with decoys that look alike."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from listen_cli import amr_listen
from sim_control import control

from amrkit.ack_schedule import WINDOW
from amrkit.acker import TURN_S
from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.paths import firmware_module
from amrkit.protocol import ACK_AD_HEADER, ack_ad
from amrkit.twin.factory import provision
from amrkit.twin.sim import Sim

PASS = "ack on the air"
DEFAULTS = firmware_module("config").DEFAULTS
ALERTS = 2
COVER_PER_DAY = 48  # with the sim's fast sleep: a cover sequence every second or two
FRAME_HEADER = bytes((0x1E, 0xFF))  # the unit's own frames


@dataclass
class Run:
    events: list[dict[str, Any]]  # what amr listen reported
    air: list[tuple[float, str, bytes]]  # (time, address, AD) of everything not a unit frame
    tags: list[bytes]  # the reported alerts' own acknowledgements
    lines: list[str]  # the unit's log
    end: float


def _acknowledged(sim: Sim) -> int:
    boots = list(sim.units["unit-1"].unit.boots)
    return sum(1 for b in boots for line in b.lines if "acknowledged by the receiver" in line)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("ack-air")
    air: list[tuple[float, str, bytes]] = []
    with Sim(1, load_board(), tmp / "fleet") as sim:
        # Cover traffic on: the unit provisioned again, between boots.
        assert control(sim, {"cmd": "power_cut", "unit": "unit-1"})["ok"]
        known = provision(sim.units["unit-1"].unit, dict(DEFAULTS, cover_per_day=COVER_PER_DAY))
        assert control(sim, {"cmd": "power_on", "unit": "unit-1"})["ok"]
        bundle = tmp / "rx.bundle"
        write_bundle(bundle, [known], PASS)

        async def observer() -> None:
            host = await sim.radio.radio.open_host("observer")

            def heard(adv: Any) -> None:
                data = bytes(adv.data_bytes)
                if not data.startswith(FRAME_HEADER):
                    air.append((time.time(), adv.address.to_string(False), data))

            host.device.on("advertisement", heard)
            await host.device.start_scanning(filter_duplicates=False)

        sim.radio.call(observer())

        def press() -> None:
            """An alarm, and the next once the unit has heard the first's ack."""
            for n in range(ALERTS):
                time.sleep(TURN_S)
                control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3, "seed": n})
                deadline = time.monotonic() + 2 * WINDOW.first_s
                while _acknowledged(sim) <= n and time.monotonic() < deadline:
                    time.sleep(0.1)

        presser = threading.Thread(target=press)
        presser.start()
        duration = ALERTS * (TURN_S + 2 * WINDOW.first_s)
        code, events, err = amr_listen(
            bundle, tmp / "rx.sqlite", PASS, "--transport", sim.ble, "--ack",
            "--duration", str(duration),
        )  # fmt: skip
        end = time.time()
        presser.join()
        assert code == 0, err
        lines = [line for b in sim.units["unit-1"].unit.boots for line in b.lines]
    alerts = [e["alert_id"] for e in events if e["event"] == "alert"]
    return Run(events, air, [ack_ad(known.keys.ack, a) for a in alerts], lines, end)


def test_each_acknowledgement_comes_from_an_address_never_used_before(run: Run) -> None:
    assert len(run.tags) == ALERTS
    addresses = {tag: {a for _, a, d in run.air if d == tag} for tag in run.tags}
    first, second = addresses.values()
    assert first and second and not first & second
    # Every address carries one payload, and once another address has been
    # on the air it never comes back: a fresh one for every change.
    payloads: dict[str, set[bytes]] = {}
    left: set[str] = set()
    previous = None
    for _, address, data in run.air:
        payloads.setdefault(address, set()).add(data)
        assert address not in left
        if previous is not None and address != previous:
            left.add(previous)
        previous = address
    assert all(len(p) == 1 for p in payloads.values())
    assert len(payloads) > ALERTS


def test_the_unit_hears_its_acknowledgements_and_stops_retrying(run: Run) -> None:
    acked = [line for line in run.lines if "acknowledged by the receiver" in line]
    assert len(acked) == ALERTS
    for line in acked:
        alert_id = line.split("alert ")[1].split()[0]
        after = run.lines[run.lines.index(line) :]
        assert not any(f"alert {alert_id} attempt" in later for later in after)


def test_routine_sequences_get_decoys_that_look_like_acknowledgements(run: Run) -> None:
    assert run.air and all(len(d) == 10 and d.startswith(ACK_AD_HEADER) for _, _, d in run.air)
    decoys = {d: t for t, _, d in reversed(run.air) if d not in run.tags}  # tag -> first heard
    routine = [e for e in run.events if e["event"] in ("heartbeat", "low_battery")]
    cover_retries = [e["t"] for e in routine if e["attempt"] >= 1]
    assert cover_retries  # cover sequences ran, and were reported as heartbeats
    # A decoy of its own for every routine sequence begun while the acker ran.
    begun = [e["t"] for e in routine if e["attempt"] == 0 and e["t"] < run.end - TURN_S]
    assert len(decoys) >= len(begun) > 0
    assert all(any(t >= begin for t in decoys.values()) for begin in begun)
