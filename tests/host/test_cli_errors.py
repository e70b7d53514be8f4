"""Bad input, as a new user types it: every `amr` verb answers with what was
wrong and what to do, and an exit code that means it, never a traceback.
Run as a user runs it, as a subprocess."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from amrkit.bundle import write_bundle
from amrkit.cli import EXIT_INPUT, EXIT_RADIO, EXIT_UNIT
from amrkit.protocol import KnownUnit, derive_keys

AMR = str(Path(sys.executable).parent / "amr")
PASS = "errors test"


def amr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AMR, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AMR_BUNDLE_PASSPHRASE": PASS, **(env or {})},
        check=False,
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("errors") / "units.bundle"
    unit_id = bytes.fromhex("0011223344556677")
    write_bundle(path, [KnownUnit(unit_id.hex(), derive_keys(b"k" * 32, unit_id), 3600)], PASS)
    return path


@pytest.mark.parametrize(
    ("transport", "words"),
    [
        ("usb:0", "USB Bluetooth dongle plugged in"),
        ("tcp-client:127.0.0.1:1", "is `amr sim`"),
        ("foo:1", "unknown scheme; use usb:N"),
    ],
)
def test_a_ble_transport_that_is_not_there(bundle: Path, transport: str, words: str) -> None:
    for verb in (
        ["info", "--transport", transport, "--bundle", str(bundle)],
        ["listen", "--transport", transport, "--bundle", str(bundle), "--duration", "1"]
        + ["--state", str(bundle.parent / "rx.sqlite")],
    ):
        result = amr(*verb, env={"HOME": str(bundle.parent)})
        assert result.returncode == EXIT_RADIO, result.stderr
        assert f"cannot open the BLE transport {transport}" in result.stderr
        assert words in result.stderr


def test_a_capture_that_cannot_be_read(bundle: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "rx.sqlite")
    for capture, words in ((tmp_path / "missing.jsonl", "No such file"), (tmp_path, "directory")):
        result = amr("listen", "--bundle", str(bundle), "--state", state, "--capture", str(capture))
        assert result.returncode == EXIT_INPUT, result.stderr
        assert f"cannot read the capture {capture}" in result.stderr and words in result.stderr
        assert "give a file of JSON lines" in result.stderr


def test_a_state_file_that_cannot_be_used(bundle: Path, tmp_path: Path) -> None:
    capture = tmp_path / "empty.jsonl"
    capture.write_text("")
    for state in (tmp_path, tmp_path / "no" / "such" / "dir" / "rx.sqlite"):
        result = amr(
            "listen", "--bundle", str(bundle), "--state", str(state), "--capture", str(capture)
        )
        assert result.returncode == EXIT_INPUT, result.stderr
        assert f"cannot use {state} as the --state file" in result.stderr


def test_usage_errors_name_the_option(bundle: Path, tmp_path: Path) -> None:
    cases = [
        (["listen", "--bundle", str(bundle), "--duration", "-1"], "--duration"),
        (["listen", "--bundle", str(bundle), "--webhook", "not a url"], "--webhook"),
        (["info", "--transport", "foo:1", "--bundle", str(bundle), "--unit", "zz"], "hex digits"),
        (["info", "--transport", "foo:1", "--bundle", str(bundle), "--timeout", "-5"], "--timeout"),
        (["build", "--profile", str(tmp_path)], "cannot read the board profile"),
        (["build", "--board", "nope"], "known boards"),
        (["sim", "--speed", "-1"], "--speed"),
        (["sim", "--units", "0"], "--units"),
        (["sim", "press", "unit-1", "--taps", "3", "--hold", "100"], "not both"),
        (["sim", "battery", "unit-1", "99999"], "MV"),
    ]
    for args, words in cases:
        result = amr(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)


def test_a_serial_port_that_is_not_there_or_busy(tmp_path: Path) -> None:
    result = amr("info", "--port", "rfc2217://127.0.0.1:9")
    assert result.returncode == EXIT_UNIT and "nothing answers at 127.0.0.1:9" in result.stderr
    result = amr("info", "--port", str(tmp_path / "ttyUSB9"))
    assert result.returncode == EXIT_UNIT and "no such port" in result.stderr
    # A tty another program holds (mpremote and esptool lock the ports they open).
    controller, terminal = pty.openpty()
    try:
        name = os.ttyname(terminal)
        with serial.Serial(name, exclusive=True):
            result = amr("info", "--port", name)
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == EXIT_UNIT, result.stderr
    assert f"{name} is busy: another program has it open" in result.stderr
    assert "then try again" in result.stderr


def test_no_sim_running(tmp_path: Path) -> None:
    env = {"AMR_SIM_RUNTIME_DIR": str(tmp_path), "AMR_SIM_CONTROL": ""}
    result = amr("sim", "press", "unit-1", env=env)
    assert result.returncode == EXIT_UNIT and "no `amr sim` running" in result.stderr
    assert "start one (`amr sim --units 2`)" in result.stderr
    result = amr("sim", "status", "--control", "127.0.0.1:9", env=env)
    assert (
        result.returncode == EXIT_UNIT
        and "no `amr sim` control port at 127.0.0.1:9" in result.stderr
    )


def test_the_command_line_loads_the_radio_stack_only_for_a_verb_that_uses_it() -> None:
    """`amr` starts without bumble or bleak (importing bumble alone doubles
    its start); the verbs that use a radio import them when they run."""
    probe = (
        "import sys; from amrkit.cli import main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'bumble', 'bleak'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout
