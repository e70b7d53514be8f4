"""`amr listen` over a live radio: bleak with the bumble backend scans the
frames a virtual unit sent, on the twin's virtual radio reached over HCI/TCP,
and the receiver acknowledges the alert over the air."""

from __future__ import annotations

import asyncio
from pathlib import Path

from listen_cli import amr_listen

from amrkit.ble.bumble import RadioThread
from amrkit.boards import load_board
from amrkit.bundle import write_bundle
from amrkit.protocol import ack_ad
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import VirtualUnit

PASS = "listen over the air"


def unit_frames(tmp_path: Path) -> tuple[list[bytes], object]:
    """What a virtual unit advertised around one alarm, in order."""
    unit = VirtualUnit(tmp_path / "unit", load_board())
    known = provision(unit)
    unit.power_on()
    rng = Rng(8)
    unit.press(2_000, trace(rng, taps(rng, 3)))
    unit.run_until(60_000)
    frames = [
        bytes.fromhex(e["data"]) for b in unit.boots for e in b.events if e["kind"] == "advertise"
    ]
    return frames, known


def test_listen_scans_through_bumble_and_acknowledges(tmp_path: Path) -> None:
    frames, known = unit_frames(tmp_path)
    bundle = tmp_path / "rx.bundle"
    write_bundle(bundle, [known], PASS)  # type: ignore[list-item]
    heard: set[bytes] = set()
    with RadioThread() as rt:
        server = rt.call(rt.radio.serve_tcp())
        button = rt.call(rt.radio.beacon(frames[0]))

        async def play() -> None:
            """The unit's frames on the air, one after another, then again."""
            while True:
                for ad in frames:
                    await button.set_data(ad)
                    await asyncio.sleep(0.3)

        async def phone_listener() -> None:
            """Another device nearby, noting every advertisement it hears."""
            host = await rt.radio.open_host("witness")
            host.device.on("advertisement", lambda adv: heard.add(bytes(adv.data_bytes)))
            await host.device.start_scanning(filter_duplicates=False)

        rt.submit(play())
        rt.call(phone_listener())
        code, events, err = amr_listen(
            bundle,
            tmp_path / "rx.sqlite",
            PASS,
            "--transport",
            server.spec,
            "--ack",
            "--duration",
            "6",
        )
    assert code == 0, err
    alerts = [e for e in events if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["unit"] == known.unit  # type: ignore[attr-defined]
    assert ack_ad(known.keys.ack, alerts[0]["alert_id"]) in heard  # type: ignore[attr-defined]
