"""The twin's MicroPython REPL on the serial port: real mpremote (CLI and
library) against a virtual ESP32-C3 served over RFC 2217, whose flash holds
an image that boots; files land in the unit's filesystem directory."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import serial
from esptool.bin_image import ELFSection, ESP32C3FirmwareImage
from mpremote.transport import TransportExecError
from mpremote.transport_serial import SerialTransport

from amrkit.boards import load_board
from amrkit.twin.serial import (
    BootContext,
    RawReplApp,
    Rfc2217Server,
    UartHandler,
    VirtualBoard,
    repl_on_boot,
)

UNIT = "unit-0042"
MPREMOTE = Path(sys.executable).with_name("mpremote")
CALL_TIMEOUT_S = 10  # per mpremote run; each takes about a second
THREAD_PREFIXES = ("rfc2217", "EN ", "pySerial RFC 2217", "repl ")
BANNER = re.compile(rb"MicroPython v\d+\.\d+\.\d+\S* on \S+; ESP32C3 module with ESP32C3\r\n")


def bootable_image() -> bytes:
    """An ESP32-C3 app image that passes the ROM's boot check (esptool's writer)."""
    rng = random.Random(7)
    image = ESP32C3FirmwareImage()
    image.entrypoint = 0x403CC710
    image.flash_mode = 2  # DIO
    image.segments = [
        ELFSection(b".dram0.data", 0x3FCD5820, rng.randbytes(0x400), 0),
        ELFSection(b".iram0.text", 0x403CC710, bytes(0x200), 0),
    ]
    data: bytes = image.save(None)
    return data


def child_micropythons() -> list[int]:
    """Live (not zombie) micropython processes whose parent is this test run."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if name == "micropython" and int(ppid) == os.getpid() and state != "Z":
            found.append(int(entry))
    return found


def _lingering_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Unit:
    directory: Path
    board: VirtualBoard
    server: Rfc2217Server
    apps: list[RawReplApp] = field(default_factory=list)

    @property
    def fs(self) -> Path:
        return self.directory / "fs"

    def mpremote(self, *args: str, resume: bool = True) -> Run:
        """mpremote's CLI; its output decoded without newline translation."""
        command = [str(MPREMOTE), "connect", self.server.url]
        command += ["resume", *args] if resume else list(args)
        result = subprocess.run(command, capture_output=True, timeout=CALL_TIMEOUT_S, check=False)
        return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    directory = tmp_path / UNIT
    start_repl = repl_on_boot(directory)
    apps: list[RawReplApp] = []

    def on_boot(context: BootContext) -> UartHandler:
        app = start_repl(context)
        assert isinstance(app, RawReplApp)
        apps.append(app)
        return app

    board = VirtualBoard.for_unit(directory, load_board(), on_boot=on_boot)
    image = bootable_image()
    board.flash.erase(0, len(image))
    board.flash.program(0, image)
    server = Rfc2217Server(board)
    server.start()
    try:
        assert board.boots[0].started_app and len(apps) == 1
        yield Unit(directory, board, server, apps)
    finally:
        server.stop()
    # Nothing is left behind: REPL processes reaped, threads ended.
    assert all(not app.running for app in apps)
    for app in apps:
        app.join()
    assert child_micropythons() == []
    deadline = time.monotonic() + 2
    while _lingering_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _lingering_threads() == []


# -- mpremote's command line ----------------------------------------------------


def test_mpremote_resume_exec_prints(unit: Unit) -> None:
    result = unit.mpremote("exec", "print(6*7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\r\n"  # the chip's stdout turns \n into \r\n


def test_the_repl_program_is_no_module_for_the_units_code(unit: Unit) -> None:
    result = unit.mpremote("exec", "import _repl")
    assert "ImportError: no module named '_repl'" in result.stdout, result.stdout + result.stderr


def test_mpremote_copies_lists_and_cats_files_in_the_units_fs(unit: Unit, tmp_path: Path) -> None:
    local = tmp_path / "local.py"
    content = "GREETING = 'hello'\nprint(GREETING, 6 * 7)\n# ends here: é\n".encode()
    local.write_bytes(content)

    result = unit.mpremote("fs", "cp", str(local), ":remote.py")
    assert result.returncode == 0, result.stderr
    assert (unit.fs / "remote.py").read_bytes() == content

    listing = unit.mpremote("fs", "ls")
    assert listing.returncode == 0, listing.stderr
    assert re.search(rf"^\s+{len(content)} remote\.py$", listing.stdout, re.M), listing.stdout

    shown = unit.mpremote("fs", "cat", ":remote.py")
    assert shown.returncode == 0, shown.stderr
    assert "GREETING = 'hello'\r\nprint(GREETING, 6 * 7)\r\n" in shown.stdout

    ran = unit.mpremote("exec", "import remote")  # '' (the cwd, /) is on sys.path
    assert ran.stdout == "hello 42\r\n", ran.stderr

    # "/" is the unit's filesystem: absolute paths land in it, and ".." stays in it.
    absolute = unit.mpremote("fs", "cp", str(local), ":/lib/")
    assert absolute.returncode != 0  # no /lib yet: a trailing / must name a directory
    made = unit.mpremote("fs", "mkdir", ":/lib", "+", "fs", "cp", str(local), ":/lib/")
    assert made.returncode == 0, made.stderr
    assert (unit.fs / "lib" / "local.py").read_bytes() == content
    escaped = unit.mpremote("exec", "open('/../../outside.txt', 'w').write('x')")
    assert escaped.returncode == 0, escaped.stderr
    assert (unit.fs / "outside.txt").exists() and not (unit.directory / "outside.txt").exists()


def test_exec_raising_shows_the_traceback_and_fails(unit: Unit) -> None:
    result = unit.mpremote("exec", "def f():\n  return 1/0\nprint('before')\nf()")
    assert result.returncode == 1
    assert result.stdout == (
        "before\r\n"
        "Traceback (most recent call last):\r\n"
        '  File "<stdin>", line 4, in <module>\r\n'
        '  File "<stdin>", line 2, in f\r\n'
        "ZeroDivisionError: divide by zero\r\n"
    )


def test_state_persists_with_resume_and_soft_reset_clears_it(unit: Unit) -> None:
    (unit.fs / "counter.py").write_text("n = 0\n")
    assert unit.mpremote("exec", "kept = 'yes'\nimport counter\ncounter.n += 1").returncode == 0
    resumed = unit.mpremote("exec", "import sys, counter; print(kept, counter.n)")
    assert resumed.stdout == "yes 1\r\n", resumed.stderr
    # Without `resume`, mpremote soft-resets first: fresh globals and modules.
    reset = unit.mpremote(
        "exec", "import sys; print('kept' in globals(), 'counter' in sys.modules)", resume=False
    )
    assert reset.stdout == "False False\r\n", reset.stderr


def test_ctrl_c_interrupts_a_running_program(unit: Unit) -> None:
    started = unit.mpremote("exec", "--no-follow", "n = 0\nwhile True:\n  n += 1")
    assert started.returncode == 0, started.stderr
    time.sleep(0.2)
    # mpremote's next session begins with Ctrl-C, which stops the loop.
    result = unit.mpremote("exec", "print(n > 0)")
    assert result.stdout == "True\r\n", result.stderr
    assert len(unit.board.boots) == 1 and unit.apps[0].running  # interrupted, not reset


# -- mpremote's library, and the bytes on the wire ----------------------------------


def test_mpremote_transport_raw_and_raw_paste(unit: Unit) -> None:
    transport = SerialTransport(unit.server.url, baudrate=115200)
    try:
        transport.enter_raw_repl(soft_reset=True)
        transport.exec("def w(data):\n    return len(data)")
        assert transport.eval("w(b'abc')") == 3  # state across execs (fs cp relies on it)
        big = "x = " + repr(bytes(range(256)) * 4) + "\nprint(len(x))"
        assert transport.exec(big) == b"1024\r\n"  # longer than several paste windows
        transport.use_raw_paste = False  # the plain raw REPL path: "OK", then output
        assert transport.exec("print('plain')") == b"plain\r\n"
        with pytest.raises(TransportExecError, match="NameError"):
            transport.exec("undefined_name")
        transport.fs_writefile("data.bin", bytes(range(256)) * 3, chunk_size=100)
        assert transport.fs_readfile("data.bin") == bytes(range(256)) * 3
        assert [(e.name, e.st_size) for e in transport.fs_listdir("")] == [("data.bin", 768)]
        assert transport.fs_stat("data.bin").st_mode == 0x8000
        transport.exit_raw_repl()
    finally:
        transport.close()
    assert (unit.fs / "data.bin").read_bytes() == bytes(range(256)) * 3


def read_until(port: serial.Serial, ending: bytes, timeout: float = 5) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(ending) and time.monotonic() < deadline:
        data += port.read(port.in_waiting or 1)
    assert data.endswith(ending), data
    return data


def test_reset_prints_the_boot_log_and_banner_then_the_friendly_repl(unit: Unit) -> None:
    with serial.serial_for_url(unit.server.url, timeout=0.1) as port:
        port.dtr = False  # (DTR, RTS) = (0, 1): EN low
        port.rts = False  # released with the boot pin high: boots from flash
        unit.board.wait_for_boot(2)
        booted = read_until(port, b">>> ")
        assert booted.startswith(b"ESP-ROM:esp32c3-api1-20210207\r\n")
        assert b"entry 0x403cc710\r\n" in booted and BANNER.search(booted)
        assert booted.endswith(b'Type "help()" for more information.\r\n>>> ')
        assert len(unit.apps) == 2 and not unit.apps[0].running  # the old REPL is gone

        port.write(b"1+1\r")
        assert read_until(port, b">>> ") == b"1+1\r\n2\r\n>>> "
        port.write(b"for i in 'ab':\r  print(i)\r\r")
        assert read_until(port, b">>> ") == (
            b"for i in 'ab':\r\n...   print(i)\r\n... \r\na\r\nb\r\n>>> "
        )
        port.write(b"\x01")  # Ctrl-A: raw REPL
        assert read_until(port, b">") == b"\r\nraw REPL; CTRL-B to exit\r\n>"
        port.write(b"print('raw')\x04")
        assert read_until(port, b"\x04>") == b"OKraw\r\n\x04\x04>"
        port.write(b"\x04")  # Ctrl-D at an empty raw prompt: soft reset
        assert read_until(port, b">") == b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
        port.write(b"\x02")  # Ctrl-B: back to the friendly REPL, with the banner
        friendly = read_until(port, b">>> ")
        assert friendly.startswith(b"\r\n") and BANNER.search(friendly)
