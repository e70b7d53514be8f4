"""The twin's serial port: real esptool (library and CLI) against a virtual
ESP32-C3 dev board served over RFC 2217.

Library calls open the port with ``timeout=DEFAULT_TIMEOUT`` themselves: given
a URL string, esptool leaves the read timeout at None and changes it around
every command, and each change makes pyserial's RFC 2217 client renegotiate
the port settings (two 50 ms acknowledgement polls), ~0.2 s per command.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import serial
from esp_pylib import serial_reset
from esptool.bin_image import ELFSection, ESP32C3FirmwareImage, ESP32S3FirmwareImage
from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
from esptool.loader import DEFAULT_TIMEOUT, ESPLoader
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError

from amrkit.boards import load_board
from amrkit.chips import BY_IMAGE_ID
from amrkit.twin.serial import (
    BootContext,
    EchoApp,
    Rfc2217Server,
    RomLoader,
    UartHandler,
    VirtualBoard,
    boot_image_check,
)
from amrkit.twin.serial.image import _xor_all, check_image_bytes
from amrkit.twin.serial.rfc2217 import BUSY_BANNER

UNIT = "unit-0007"
ENTRY = 0x403CC710
ESPTOOL = Path(sys.executable).with_name("esptool")
THREAD_PREFIXES = ("rfc2217", "EN ", "pySerial RFC 2217")


def firmware_image(image_class: type = ESP32C3FirmwareImage, seed: int = 1) -> bytes:
    """A small but complete app image (header, extended header with chip id,
    two segments, checksum, SHA-256), made by esptool's own image writer."""
    rng = random.Random(seed)
    image = image_class()
    image.entrypoint = ENTRY
    image.flash_mode = 2  # DIO
    image.segments = [
        ELFSection(b".dram0.data", 0x3FCD5820, rng.randbytes(0x1714), 0),
        ELFSection(b".iram0.text", ENTRY, bytes(0x968), 0),  # compressible
    ]
    data: bytes = image.save(None)
    return data


def expected_mac() -> bytes:
    return bytes.fromhex(load_board().mac_for(UNIT))


@dataclass
class Unit:
    board: VirtualBoard
    server: Rfc2217Server
    app_boots: list[BootContext] = field(default_factory=list)

    @property
    def flash_bin(self) -> Path:
        return self.board.flash.path


def _lingering_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)]


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    app_boots: list[BootContext] = []

    def on_boot(context: BootContext) -> UartHandler:
        app_boots.append(context)
        return EchoApp(context)

    board = VirtualBoard.for_unit(tmp_path / UNIT, load_board(), on_boot=on_boot)
    server = Rfc2217Server(board)
    server.start()
    try:
        yield Unit(board, server, app_boots)
    finally:
        server.stop()
    # Nothing is left behind: threads joined, port closed.
    deadline = time.monotonic() + 2
    while _lingering_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _lingering_threads() == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def connect(url: str) -> ESPLoader:
    port = serial.serial_for_url(url, timeout=DEFAULT_TIMEOUT)
    try:
        return detect_chip(port)
    except BaseException:
        port.close()
        raise


# -- the image check ------------------------------------------------------


def test_chip_ids_match_esptool() -> None:
    for cls in CHIP_DEFS.values():
        if cls.IMAGE_CHIP_ID is not None and cls.CHIP_NAME != "ESP8266":
            assert BY_IMAGE_ID[cls.IMAGE_CHIP_ID].name == cls.CHIP_NAME


def test_boot_image_check_accepts_c3_and_rejects_others(tmp_path: Path) -> None:
    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"\xff" * 0x10000)
    erased = boot_image_check(flash)
    assert not erased.ok and "no image" in erased.reason and "erased" in erased.reason

    c3 = firmware_image()
    flash.write_bytes(c3 + b"\xff" * (0x10000 - len(c3)))
    ok = boot_image_check(flash, chip="ESP32-C3")
    assert ok.ok, ok.reason
    assert ok.chip_id == 5 and ok.entry == ENTRY and ok.flash_mode == "DIO"
    assert ok.segments == ((0x3FCD5820, 0x1714), (ENTRY, 0x968))
    assert ok.length == len(c3)

    s3 = firmware_image(ESP32S3FirmwareImage)
    flash.write_bytes(s3 + b"\xff" * (0x10000 - len(s3)))
    wrong = boot_image_check(flash, chip="ESP32-C3")
    assert not wrong.ok
    assert wrong.reason == "image is for chip id 9 (ESP32-S3), this board is ESP32-C3"
    assert boot_image_check(flash, chip="ESP32-S3").ok

    assert "does not exist" in boot_image_check(tmp_path / "missing.bin").reason


def test_boot_image_check_catches_corruption() -> None:
    good = firmware_image()

    def check(data: bytes) -> str:
        return check_image_bytes(lambda at, n: data[at : at + n]).reason

    segment_byte = 24 + 8 + 100
    flipped = bytearray(good)
    flipped[segment_byte] ^= 0x01
    assert check(bytes(flipped)).startswith("checksum failure")
    both = bytearray(flipped)
    both[segment_byte + 1] ^= 0x01  # same XOR, different data: only the digest notices
    assert check(bytes(both)) == "SHA-256 comparison failed"
    assert "past the end of flash" in check(good[:4000])
    bad_magic = b"\x00" + good[1:]
    assert check(bad_magic).startswith("no image at 0x0: invalid header")


def test_xor_fold_matches_bytewise_xor() -> None:
    for n in range(70):
        data = os.urandom(n)
        assert _xor_all(data) == functools.reduce(operator.xor, data, 0)


# -- the auto-reset circuit, driven directly with esptool's sequences -------


class LinesPort:
    """Just enough of a pyserial port for esp_pylib's reset sequences."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board

    @property
    def dtr(self) -> bool:
        return self.board.dtr

    def setDTR(self, state: bool) -> None:
        self.board.set_lines(dtr=state)

    def setRTS(self, state: bool) -> None:
        self.board.set_lines(rts=state)


def test_reset_sequences_select_boot_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    board = VirtualBoard(tmp_path / "u", b"\x02\x00\x00\x00\x00\x01")
    port = LinesPort(board)
    # UnixTightReset writes both lines at once through ioctl(TIOCMSET); here
    # the "ioctl" is the board's atomic set_lines.
    monkeypatch.setattr(
        serial_reset, "set_dtr_rts", lambda p, dtr=False, rts=False: board.set_lines(dtr, rts)
    )
    board.power_on()
    try:
        assert board.boots[-1].download is False  # powered up into a (failed) flash boot
        serial_reset.unix_tight_bootloader_reset(port)
        assert board.wait_for_boot(2).download is True
        assert "waiting for download" in board.boots[-1].console

        serial_reset.hard_reset(port)
        boot = board.wait_for_boot(3)
        assert boot.download is False and boot.check is not None
        assert "no image" in boot.check.reason and not boot.started_app

        serial_reset.classic_bootloader_reset(port)
        assert board.wait_for_boot(4).download is True

        # Opening a port asserts DTR, then RTS: EN never goes low, no reset.
        board.set_lines(dtr=False, rts=False)
        board.set_lines(dtr=True)
        board.set_lines(rts=True)
        # A terminal holding both lines asserted after a reset: EN released at
        # (1, 1) and left there, so the chip boots from flash once the wait ends.
        board.set_lines(dtr=False)
        released = time.monotonic()
        board.set_lines(dtr=True)
        boot = board.wait_for_boot(5)
        assert not boot.download and boot.at - released >= board.line_settle_s - 0.01
        time.sleep(0.1)
        assert len(board.boots) == 5
    finally:
        board.power_off()


# -- esptool over RFC 2217 ----------------------------------------------------


def test_esptool_detects_c3_and_reads_mac(unit: Unit) -> None:
    esp = connect(unit.server.url)
    try:
        assert esp.CHIP_NAME == "ESP32-C3" and not esp.IS_STUB
        assert bytes(esp.read_mac("BASE_MAC")) == expected_mac()
        assert esp.get_chip_description() == "ESP32-C3 (QFN32) (revision v0.4)"
        assert esp.get_security_info()["chip_id"] == 5
        esp.sync()  # the ROM is still there
        boots = len(unit.board.boots)
        esp.run()  # FLASH_BEGIN(0) + FLASH_END(run user code): the ROM boots from flash
    finally:
        esp._port.close()
    boot = unit.board.wait_for_boot(boots + 1)
    assert boot.cause == "run user code" and boot.check is not None
    assert not boot.started_app and "flash is erased" in boot.check.reason


def test_esptool_writes_verifies_and_hard_resets_into_the_image(unit: Unit) -> None:
    plain, packed = firmware_image(seed=1), firmware_image(seed=2)
    esp = connect(unit.server.url)
    try:
        attach_flash(esp)
        write_flash(esp, [(0x0, plain)], no_compress=True)  # verifies by MD5 itself
        assert unit.flash_bin.read_bytes()[: len(plain)] == plain
        assert esp.flash_md5sum(0, len(plain)) == hashlib.md5(plain).hexdigest()

        write_flash(esp, [(0x0, packed)], compress=True)
        assert unit.flash_bin.read_bytes()[: len(packed)] == packed
        assert esp.read_flash(0x20, 16) == packed[0x20:0x30]  # READ_FLASH_SLOW
        rom = unit.board.handler
        assert isinstance(rom, RomLoader)
        assert {0x03, 0x11, 0x13} <= set(rom.stats.commands)  # FLASH_DATA, _DEFL_DATA, MD5
        boots = len(unit.board.boots)
        assert unit.app_boots == []
        reset_chip(esp, "hard-reset")
    finally:
        esp._port.close()
    boot = unit.board.wait_for_boot(boots + 1)
    assert boot.started_app and boot.cause == "POWERON"
    assert f"entry {ENTRY:#010x}" in boot.console
    assert len(unit.app_boots) == 1 and unit.app_boots[0].image.entry == ENTRY
    assert unit.flash_bin.stat().st_size == 4 * 1024 * 1024


def test_esptool_runs_its_stub_and_flashes_through_it(unit: Unit) -> None:
    image = firmware_image(seed=3)
    esp = connect(unit.server.url)
    try:
        started = time.monotonic()
        stub = run_stub(esp)  # MEM_BEGIN/DATA/END, then the stub's "OHAI"
        assert time.monotonic() - started < 5
        assert stub.IS_STUB
        rom = unit.board.handler
        assert isinstance(rom, RomLoader) and rom.stub and rom.stats.stub is not None
        assert bytes(stub.read_mac("BASE_MAC")) == expected_mac()  # READ_REG as before
        attach_flash(stub)
        write_flash(stub, [(0x0, image)], compress=True)  # 16 KiB blocks, MD5 verified
        assert unit.flash_bin.read_bytes()[: len(image)] == image
        # SPI_FLASH_MD5 answers 16 raw bytes; READ_FLASH streams with acks and a digest.
        assert stub.flash_md5sum(0, len(image)) == hashlib.md5(image).hexdigest()
        assert stub.read_flash(0, len(image)) == image
        assert stub.read_flash(0x1000, 0x3000) == unit.flash_bin.read_bytes()[0x1000:0x4000]
        stub.erase_region(0x1000, 0x1000)
        assert unit.flash_bin.read_bytes()[0x1000:0x2000] == b"\xff" * 0x1000
        with pytest.raises(FatalError):
            stub.erase_region(0x1001, 0x1000)  # not whole sectors: the stub refuses
        assert stub.read_flash(0, 16) == image[:16]  # still answering after the error
        stub.sync()
        assert stub.sync_stub_detected  # SYNC answered with 0, as the stub does
        stub.erase_flash()
        assert unit.flash_bin.read_bytes()[:16] == b"\xff" * 16
        assert {0xD0, 0xD1, 0xD2} <= set(rom.stats.commands)
        boots = len(unit.board.boots)
        stub.soft_reset(True)  # FLASH_END without "stay": the stub reboots into the ROM
    finally:
        esp._port.close()
    boot = unit.board.wait_for_boot(boots + 1)
    assert boot.download and isinstance(unit.board.handler, RomLoader)
    assert not unit.board.handler.stub


def test_a_ram_program_that_is_not_the_stub_goes_quiet(unit: Unit) -> None:
    esp = connect(unit.server.url)
    try:
        esp.mem_begin(64, 1, 64, 0x40380000)
        esp.mem_block(bytes(64), 0)
        esp.mem_finish(0x40380000)
        rom = unit.board.handler
        assert isinstance(rom, RomLoader) and rom.stats.ram_segments == {0x40380000: 64}
        assert not rom.stub
        with pytest.raises(FatalError):
            esp.read_reg(0x40001000, timeout=0.5)  # nobody answers
    finally:
        esp._port.close()


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "no-stub"])
def test_esptool_cli_writes_with_and_without_stub(unit: Unit, tmp_path: Path, stub: bool) -> None:
    image = firmware_image(seed=4)
    path = tmp_path / "image.bin"
    path.write_bytes(image)
    result = subprocess.run(
        [str(ESPTOOL), "--port", unit.server.url, *([] if stub else ["--no-stub"])]
        + ["write-flash", "0x0", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("Stub flasher running" in result.stdout) is stub
    assert "Hash of data verified" in result.stdout
    assert unit.flash_bin.read_bytes()[: len(image)] == image
    boot = unit.board.wait_for_boot(len(unit.board.boots), timeout=2)
    assert boot.started_app


def test_wrong_chip_image_does_not_boot(unit: Unit) -> None:
    s3 = firmware_image(ESP32S3FirmwareImage)
    esp = connect(unit.server.url)
    try:
        attach_flash(esp)
        with pytest.raises(FatalError, match="not contain an ESP32-C3 image"):
            write_flash(esp, [(0x0, s3)])  # esptool refuses unless forced
        write_flash(esp, [(0x0, s3)], force=True, compress=True)
        boots = len(unit.board.boots)
        reset_chip(esp, "watchdog-reset")  # the RTC watchdog path, not the lines
    finally:
        esp._port.close()
    boot = unit.board.wait_for_boot(boots + 1)
    assert boot.cause == "RTC watchdog" and not boot.started_app
    assert boot.check is not None
    assert boot.check.reason == "image is for chip id 9 (ESP32-S3), this board is ESP32-C3"
    assert "rst:0x10 (RTCWDT_RTC_RESET)" in boot.console
    assert unit.app_boots == []


def test_esptool_ign_set_control_url_also_resets_into_download_mode(unit: Unit) -> None:
    # pyserial then sleeps 100 ms per line change instead of awaiting the ack.
    esp = connect(unit.server.url + "?ign_set_control")
    try:
        assert esp.CHIP_NAME == "ESP32-C3"
    finally:
        esp._port.close()


def test_esptool_cli_reads_mac_and_hard_resets(unit: Unit) -> None:
    c3 = firmware_image()
    unit.board.flash.erase(0, len(c3))
    unit.board.flash.program(0, c3)
    result = subprocess.run(
        [
            str(ESPTOOL),
            "--port",
            unit.server.url,
            "--before",
            "default-reset",
            "--after",
            "hard-reset",
            "--no-stub",
            "read-mac",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ESP32-C3" in result.stdout
    assert f"MAC:                {expected_mac().hex(':')}" in result.stdout
    boot = unit.board.wait_for_boot(len(unit.board.boots), timeout=2)
    deadline = time.monotonic() + 2
    while not unit.app_boots and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(unit.app_boots) == 1, [b.console for b in unit.board.boots]
    assert boot.number >= 3  # power-on, download mode, then the image


# -- the UART after boot, and the port itself -----------------------------


def test_app_boots_at_power_on_and_owns_the_uart(tmp_path: Path) -> None:
    c3 = firmware_image()
    first = VirtualBoard(tmp_path / UNIT, expected_mac())
    first.flash.erase(0, len(c3))
    first.flash.program(0, c3)  # persists in flash.bin for the next board object

    apps: list[EchoApp] = []

    def on_boot(context: BootContext) -> UartHandler:
        context.send(b"app up\r\n")
        apps.append(EchoApp(context))
        return apps[-1]

    board = VirtualBoard(tmp_path / UNIT, expected_mac(), on_boot=on_boot)
    with Rfc2217Server(board) as server:
        assert board.boots[0].started_app and len(apps) == 1
        with serial.serial_for_url(server.url, timeout=2) as port:
            port.write(b"print(1)\r\n")
            assert port.read(10) == b"print(1)\r\n"
            assert apps[0].received == b"print(1)\r\n"
            assert len(board.boots) == 1  # opening the port (DTR, RTS = 1, 1) did not reset it

            first = board.boots[0]
            assert first.check is not None
            port.dtr = False  # (DTR, RTS) = (0, 1): EN low, the chip is held in reset
            assert board.handler is None
            BootContext(board, 1, "POWERON", first.check).send(b"late output")  # dropped
            port.rts = False  # EN released, boot pin high: boots the image again
            assert board.wait_for_boot(2).started_app
            out = port.read_until(b"app up\r\n")
            assert out.startswith(b"ESP-ROM:") and out.endswith(b"entry 0x403cc710\r\napp up\r\n")
            assert b"late output" not in out
    assert _lingering_threads() == []


def test_closing_the_port_drops_the_lines(unit: Unit) -> None:
    port = serial.serial_for_url(unit.server.url, timeout=1)
    try:
        port.dtr = False  # (DTR, RTS) = (0, 1): EN held low
        assert unit.board.en_low and unit.board.handler is None
    finally:
        port.close()  # like a tty closing with HUPCL: both lines drop, EN rises
    boot = unit.board.wait_for_boot(2)
    assert not boot.download and not unit.board.dtr and not unit.board.rts


def test_port_is_exclusive(unit: Unit) -> None:
    first = socket.create_connection(("127.0.0.1", unit.server.port))
    try:
        deadline = time.monotonic() + 2
        while unit.server.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = socket.create_connection(("127.0.0.1", unit.server.port))
        second.settimeout(2)
        try:
            # Told so, as ser2net tells it, and closed at once: port busy.
            assert second.makefile("rb").read() == BUSY_BANNER
        finally:
            second.close()
        assert unit.server.connections == 1
    finally:
        first.close()
