"""`amr listen` as a user runs it: an encrypted bundle, a capture of what
virtual units advertised, JSON lines out, a webhook fed through the outbox."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from listen_cli import amr_listen

from amrkit.boards import load_board
from amrkit.bundle import BundleError, read_bundle, write_bundle
from amrkit.cli import EXIT_INPUT, EXIT_KEYS, main
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.unit import VirtualUnit

PASS = "correct horse battery staple"


def capture_from_twin(tmp_path: Path) -> tuple[Path, list[KnownUnit]]:
    """Two virtual units: one raises an alarm, one only sends heartbeats."""
    units, lines = [], []
    for name, pressed in (("a", True), ("b", False)):
        unit = VirtualUnit(tmp_path / name, load_board())
        units.append(provision(unit))
        unit.power_on()
        if pressed:
            rng = Rng(4)
            unit.press(2_000, trace(rng, taps(rng, 3)))
        # Past the first heartbeat.
        unit.run_until(firmware_module("config").DEFAULTS["heartbeat_s"] * 1000 + 60_000)
        lines += [
            {"t": e["t"] / 1000, "ad": e["data"], "rssi": -60}
            for b in unit.boots
            for e in b.events
            if e["kind"] == "advertise"
        ]
    lines.sort(key=lambda r: r["t"])
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return capture, units


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[KnownUnit]]:
    tmp = tmp_path_factory.mktemp("listen")
    capture, units = capture_from_twin(tmp)
    bundle = tmp / "receiver.bundle"
    write_bundle(bundle, units, PASS)
    return capture, bundle, units


def test_bundle_keys_are_encrypted_at_rest(scene: tuple[Path, Path, list[KnownUnit]]) -> None:
    _, bundle, units = scene
    text = bundle.read_text()
    for u in units:
        assert u.keys.enc.hex() not in text and u.keys.id.hex() not in text
    assert [u.unit for u in read_bundle(bundle, PASS)] == [u.unit for u in units]
    with pytest.raises(BundleError, match="wrong passphrase"):
        read_bundle(bundle, "not it")


def test_listen_reports_one_alert_and_heartbeats(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    capture, bundle, units = scene
    code, events, err = amr_listen(bundle, tmp_path / "s", PASS, "--capture", str(capture))
    assert code == 0, err
    alerts = [e for e in events if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["unit"] == units[0].unit
    heartbeats = {e["unit"] for e in events if e["event"] == "heartbeat"}
    assert heartbeats == {units[0].unit, units[1].unit}
    stats = json.loads(err.strip().splitlines()[-1])["stats"]
    assert stats["retransmissions"] > 0 and not any(k.startswith("rejected") for k in stats)
    # Run again on the same state: everything is a replay now, nothing is reported.
    code, events, _ = amr_listen(bundle, tmp_path / "s", PASS, "--capture", str(capture))
    assert code == 0 and [e for e in events if e["event"] == "alert"] == []


def test_listen_forwards_events_to_a_webhook(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    capture, bundle, _ = scene
    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/alerts"
        code, events, err = amr_listen(
            bundle, tmp_path / "s", PASS, "--capture", str(capture), "--webhook", url
        )
    finally:
        server.shutdown()
    assert code == 0, err
    assert [e["event"] for e in received] == [e["event"] for e in events]
    assert any(e["event"] == "alert" for e in received)


def test_wrong_passphrase_and_bad_capture_have_their_exit_codes(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    capture, bundle, _ = scene
    code, _, err = amr_listen(bundle, tmp_path / "s", "nope", "--capture", str(capture))
    assert code == EXIT_KEYS and "wrong passphrase" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1, "ad": "zz"}\n')
    code, _, err = amr_listen(bundle, tmp_path / "s", PASS, "--capture", str(bad))
    assert code == EXIT_INPUT and "bad.jsonl:1" in err


def test_listen_for_a_person_names_units_and_filters(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    capture, bundle, units = scene
    names = tmp_path / "names.txt"
    names.write_text(f"# unit id, then its name\n{units[0].unit} Anna's button\n")
    result = CliRunner().invoke(
        main,
        ["listen", "--bundle", str(bundle), "--state", str(tmp_path / "s"), "--capture"]
        + [str(capture), "--format", "text", "--names", str(names)],
        env={"AMR_BUNDLE_PASSPHRASE": PASS},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    alert = [line for line in lines if "ALERT" in line]
    assert len(alert) == 1 and f"Anna's button [{units[0].unit[:8]}]: ALERT" in alert[0]
    assert any(f"{units[1].unit}: heartbeat" in line for line in lines)  # no name: its id
    assert all("{" not in line for line in lines)
    # Filters: one unit's heartbeats only, as JSON.
    code, events, err = amr_listen(
        bundle,
        tmp_path / "s2",
        PASS,
        "--capture",
        str(capture),
        "--unit",
        units[1].unit.upper(),
        "--event",
        "heartbeat",
        "--json",
    )
    assert code == 0, err
    assert events and {(e["unit"], e["event"]) for e in events} == {(units[1].unit, "heartbeat")}


def test_listen_filters_are_checked(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    capture, bundle, _ = scene
    code, _, err = amr_listen(
        bundle, tmp_path / "s", PASS, "--capture", str(capture), "--event", "boom"
    )
    assert code == 2 and "'alert'" in err and "'supervision_lost'" in err
    code, _, err = amr_listen(
        bundle, tmp_path / "s", PASS, "--capture", str(capture), "--unit", "x1"
    )
    assert code == 2 and "16 hex digits" in err
    bad = tmp_path / "names.txt"
    bad.write_text("0011223344556677\n")
    code, _, err = amr_listen(
        bundle,
        tmp_path / "s",
        PASS,
        "--capture",
        str(capture),
        "--format",
        "text",
        "--names",
        str(bad),
    )
    assert code == EXIT_INPUT and "names.txt:1: no label" in err


def test_listen_names_units_from_the_registry(
    scene: tuple[Path, Path, list[KnownUnit]], tmp_path: Path
) -> None:
    from amrkit.registry import MasterKey, Registry, State

    capture, bundle, units = scene
    key = MasterKey.generate()
    key.write_file(tmp_path / "master.key")
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    with Registry.open(url, key, create=True) as registry:
        for n, unit in enumerate(units):
            with registry.step("tech", "add", unit.unit) as tx:
                tx.add_unit("esp32c3-coin", "ESP32-C3", f"aa:bb:cc:dd:ee:0{n}")
        with registry.step("tech", "flash", units[0].unit) as tx:
            tx.transition(State.FLASHED)
    # An issued unit shows its case; here the first is flashed, the second in stock.
    result = CliRunner().invoke(
        main,
        ["listen", "--bundle", str(bundle), "--state", str(tmp_path / "s"), "--capture"]
        + [str(capture), "--format", "text", "--registry", url]
        + ["--master-key-file", str(tmp_path / "master.key")],
        env={"AMR_BUNDLE_PASSPHRASE": PASS},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(f"unit (flashed) [{units[0].unit[:8]}]: ALERT" in line for line in lines), lines
    assert any(f"unit (stock) [{units[1].unit[:8]}]: heartbeat" in line for line in lines)
    wrong = CliRunner().invoke(
        main,
        ["listen", "--bundle", str(bundle), "--capture", str(capture), "--registry", url],
        env={"AMR_BUNDLE_PASSPHRASE": PASS, "AMR_MASTER_KEY": MasterKey.generate().secret.hex()},
    )
    assert wrong.exit_code == EXIT_KEYS and "master key" in wrong.output


def test_listening_ends_when_cancelled_while_adverts_pour_in() -> None:
    """amr check cancels its listener once the test press is heard; a cancel
    that lands as an advert arrives must not be lost (asyncio.wait_for on
    Python 3.11 loses it, and the check then hung)."""
    import asyncio
    import time

    from amrkit.listen import Advert, listen
    from amrkit.receiver import Receiver

    async def flood(queue: asyncio.Queue[Advert | None]) -> None:
        while True:
            queue.put_nowait((time.time(), bytes(20), -50))
            await asyncio.sleep(0)

    async def scene() -> None:
        for turns in range(1, 8):
            receiver = Receiver([])
            task = asyncio.create_task(listen(receiver, flood, lambda event: None))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            receiver.close()
            assert done, f"listen() still running 2 s after it was cancelled (turn {turns})"

    asyncio.run(scene())
