"""The twin's download socket: the UART with the jig's BOOT button held, as
`socket://` for the esptool CLI (`--before no-reset --after watchdog-reset`),
which then pays no RFC 2217 cost per command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from amrkit.boards import load_board
from amrkit.twin.serial.flash import FLASH_FILE, FlashMemory
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim

ESPTOOL = str(Path(sys.executable).with_name("esptool"))
NO_RESET = ["--before", "no-reset", "--after", "watchdog-reset"]


def test_esptool_cli_flashes_through_the_download_socket(tmp_path: Path) -> None:
    image = tmp_path / "c3.bin"
    image.write_bytes(stand_in_image())
    with Sim(1, load_board(), tmp_path / "fleet", blank=True) as sim:
        line = sim.units["unit-1"].announce()
        port = str(line["serial_download"])
        assert port.startswith("socket://127.0.0.1:")
        ident = subprocess.run(
            [ESPTOOL, "--port", port, *NO_RESET, "flash-id"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert ident.returncode == 0, ident.stdout + ident.stderr
        assert "ESP32-C3" in ident.stdout and "Stub flasher running" in ident.stdout
        written = subprocess.run(
            [ESPTOOL, "--port", port, *NO_RESET, "write-flash", "0x0", str(image)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert written.returncode == 0, written.stdout + written.stderr
        assert "Hash of data verified" in written.stdout
        flash = FlashMemory(sim.directory / "unit-1" / FLASH_FILE)
        assert flash.read(0, len(image.read_bytes())) == image.read_bytes()
        # The watchdog reset after it boots the image from flash, as on the chip.
        boots = sim.units["unit-1"].serial.board.boots
        assert boots[-1].cause == "RTC watchdog" and not boots[-1].download


def test_the_download_socket_and_the_serial_port_are_one_uart(tmp_path: Path) -> None:
    with Sim(1, load_board(), tmp_path / "fleet", blank=True) as sim:
        line = sim.units["unit-1"].announce()
        host, port = str(line["serial_download"]).removeprefix("socket://").split(":")
        server = sim.units["unit-1"].serial
        assert server is not None
        with socket.create_connection((host, int(port)), timeout=10):
            # The UART is taken once the server has accepted the client, not
            # when the connection is made.
            deadline = time.monotonic() + 10
            while server.connections == 0:
                assert time.monotonic() < deadline, "the download socket never took its client"
                time.sleep(0.01)
            rfc = str(line["serial"]).removeprefix("rfc2217://").split(":")
            with socket.create_connection((rfc[0], int(rfc[1])), timeout=10) as second:
                assert second.recv(64).startswith(b"Port already in use")
