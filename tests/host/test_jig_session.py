"""The jig's wired session and the unit's app, on twin units as on the chip:
the session's Ctrl-C stops the app, and closing the link hands the unit back
to it with a soft reboot (RTC memory kept, reset cause SOFT_RESET). Before,
the link left the unit at its REPL prompt: read on the bench, then
unplugged, it ignored its button until a reset."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from click.testing import CliRunner
from listen_cli import amr_listen
from mpremote.transport_serial import SerialTransport
from sim_control import control

from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.cli import main
from amrkit.contract import SOFT_RESET
from amrkit.twin.sim import Sim, SimUnit
from amrkit.unit import Unit
from amrkit.unit.wired import WiredLink, command_source

PASS = "jig session test"
# A person taps once the unit has booted its app (edges while it boots are
# not seen, on the chip as on the twin): its wake-to-app time, and a margin.
BOOTED_S = load_board().wake_to_app_ms / 1000 + 0.3


def heard(sim: Sim, tmp_path: Path, name: str) -> list[str]:
    """Tap the unit three times; the kinds of event a receiver hears in 8 s."""
    sim_unit = sim.units["unit-1"]
    assert sim_unit.known is not None
    bundle = tmp_path / "rx.bundle"
    write_bundle(bundle, [sim_unit.known], PASS)
    assert control(sim, {"cmd": "taps", "unit": "unit-1", "count": 3})["ok"]
    code, events, err = amr_listen(
        bundle, tmp_path / f"{name}.sqlite", PASS, "--transport", sim.ble, "--ack",
        "--duration", "8",
    )  # fmt: skip
    assert code == 0, err
    return [str(e["event"]) for e in events]


def app(sim_unit: SimUnit) -> str:
    return str(control(sim_unit.sim, {"cmd": "status", "unit": sim_unit.name})["app"])


def test_after_amr_info_the_unit_still_raises_alerts(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])
        boots = len(sim_unit.unit.boots)

        # The old close (out of the raw REPL, nothing more): the session's
        # Ctrl-C stopped the app and nothing starts it again.
        transport = SerialTransport(url, baudrate=115200)
        transport.enter_raw_repl(soft_reset=False)
        assert app(sim_unit) == "stopped"
        assert b'"unit_id"' in transport.exec(command_source("info"))
        transport.exit_raw_repl()
        transport.close()
        assert app(sim_unit) == "stopped"
        time.sleep(BOOTED_S)
        assert heard(sim, tmp_path, "old") == []  # at its prompt, it ignores the button
        assert len(sim_unit.unit.boots) == boots + int(sim_unit.unit.boots[-1].interrupted)

        # `amr info --port` hands it back: the app runs again at once, and
        # the wearer's alarm gets out.
        result = CliRunner().invoke(main, ["info", "--port", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["unit_id"] == sim_unit.known.unit  # type: ignore[union-attr]
        assert app(sim_unit) == "running"
        time.sleep(BOOTED_S)
        assert "alert" in heard(sim, tmp_path, "new")
        assert SOFT_RESET in [b.reset_cause for b in sim_unit.unit.boots]
        log = [line for b in sim_unit.unit.boots for line in b.lines]
        said = f"boot: reset cause {SOFT_RESET}, wake cold boot"
        assert any(said in line for line in log), log[-20:]


def test_test_mode_set_over_the_wire_survives_the_soft_reboot(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet", speed=1.0) as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])

        async def session() -> WiredLink:
            async with WiredLink(url) as link:
                await Unit(link).test_mode(120)
                assert app(sim_unit) == "stopped"  # the app does not run meanwhile
            return link

        link = asyncio.run(session())
        assert link.handed_back is True
        assert app(sim_unit) == "running"

        async def read() -> dict[str, object]:
            async with WiredLink(url) as link:
                return await Unit(link).info()

        # The restarted app kept the end time it found in RTC memory.
        time.sleep(BOOTED_S)
        assert 100 <= int(asyncio.run(read())["test_mode_s"]) <= 120  # type: ignore[call-overload]
        time.sleep(BOOTED_S)
        kinds = heard(sim, tmp_path, "test")
        assert "test_press" in kinds and "alert" not in kinds, kinds
        causes = [b.reset_cause for b in sim_unit.unit.boots]
        assert causes.count(SOFT_RESET) >= 2, causes


def test_a_unit_that_does_not_answer_the_hand_back_fails_nothing(
    tmp_path: Path, caplog: object
) -> None:
    import logging

    with Sim(1, load_board(), tmp_path / "fleet") as sim:
        sim_unit = sim.units["unit-1"]
        url = str(sim_unit.announce()["serial"])

        async def session() -> tuple[WiredLink, dict[str, object]]:
            async with WiredLink(url) as link:
                info = await Unit(link).info()
                # The unit goes deaf: the REPL process is gone (a wedged chip).
                handler = sim_unit.serial.board.handler  # type: ignore[union-attr]
                handler.process.kill()  # type: ignore[union-attr]
            return link, info

        with caplog.at_level(logging.WARNING, logger="amrkit.unit.wired"):  # type: ignore[attr-defined]
            link, info = asyncio.run(session())
        assert info["unit_id"] == sim_unit.known.unit  # type: ignore[union-attr]
        assert link.handed_back is False
        text = caplog.text  # type: ignore[attr-defined]
        assert "did not restart its app" in text and "reset" in text, text
