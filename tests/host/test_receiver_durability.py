"""`amr listen` killed right after it printed an event: restarted on the
same state file, it takes the frame that made the event for a replay."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from amrkit.bundle import write_bundle
from amrkit.protocol import Frame, Kind, KnownUnit, derive_keys, encode
from amrkit.receiver import DUPLICATE_S

AMR = str(Path(sys.executable).parent / "amr")
PASS = "durability test passphrase"
UNIT = bytes.fromhex("5151525253535454")
KNOWN = KnownUnit(UNIT.hex(), derive_keys(b"durability test registry secret!", UNIT))
# Only a listener that hangs fails to answer in this long; no speed is asserted.
STUCK_S = 60


def line(t: float, counter: int) -> str:
    ad = encode(KNOWN.keys, Frame(Kind.HEARTBEAT, counter, battery_pct=70))
    return json.dumps({"t": t, "ad": ad.hex(), "rssi": -60}) + "\n"


def listen_command(tmp_path: Path, capture: Path) -> list[str]:
    bundle = tmp_path / "rx.bundle"
    if not bundle.exists():
        write_bundle(bundle, [KNOWN], PASS)
    state = tmp_path / "rx.sqlite"
    return [
        AMR,
        "listen",
        "--bundle",
        str(bundle),
        "--state",
        str(state),
        "--capture",
        str(capture),
    ]


def next_event(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STUCK_S)
    assert ready, "amr listen printed nothing"
    event: dict[str, object] = json.loads(proc.stdout.readline())
    return event


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_frame_whose_event_was_printed_is_a_replay_after_the_listener_is_killed(
    tmp_path: Path, sig: signal.Signals
) -> None:
    env = {**os.environ, "AMR_BUNDLE_PASSPHRASE": PASS}
    fifo = tmp_path / "air.fifo"
    os.mkfifo(fifo)
    # Read-write, so opening does not wait for the reader and the reader
    # never sees the end: the listener waits for more, as on the air.
    air = os.open(fifo, os.O_RDWR)
    proc = subprocess.Popen(
        listen_command(tmp_path, fifo), stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        t = 1000.0
        # Two heartbeats in quick succession: the second is the last thing
        # the listener did before it was killed.
        os.write(air, line(t, 0).encode())
        assert next_event(proc)["counter"] == 0
        os.write(air, line(t + 0.1, 1).encode())
        event = next_event(proc)
        assert event["event"] == "heartbeat" and event["counter"] == 1
        proc.send_signal(sig)
        # SIGKILL ends it where it is; SIGTERM is taken: state saved, exit 143.
        assert proc.wait(STUCK_S) == (-sig if sig == signal.SIGKILL else 128 + sig)
    finally:
        os.close(air)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Restarted on the same state, the same frame heard again (later than
    # a copy of its own advertising) is a replay: no event.
    replay = tmp_path / "replay.jsonl"
    replay.write_text(line(t + 0.1 + DUPLICATE_S + 1, 1) + line(t + 0.1 + DUPLICATE_S + 2, 2))
    done = subprocess.run(
        listen_command(tmp_path, replay), capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(e["event"], e["counter"]) for e in events] == [("heartbeat", 2)]
    stats = json.loads(done.stderr.splitlines()[-1])["stats"]
    assert stats == {"rejected_replay": 1, "accepted": 1}
