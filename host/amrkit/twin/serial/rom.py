"""The ESP32-C3 ROM serial loader ("download mode"), as esptool sees it.

Everything esptool does without its flasher stub (``--no-stub``) is here:
SLIP framing; command packets ``<BBHI`` (direction 0x00, opcode, data
length, checksum) + data; responses ``<BBHI`` (direction 0x01, opcode,
length, value) + data + four status bytes (status, error, two reserved: the
ROM of every chip after the ESP8266 sends four, esptool reads the first two).

Supported: SYNC (eight answers, non-zero value = ROM, not stub),
READ_REG/WRITE_REG on a small register model (eFuse MAC and chip revision,
the SPI controller's user-command registers so esptool can read the flash
JEDEC id and SFDP, the RTC watchdog for ``--after watchdog-reset``),
GET_SECURITY_INFO (20-byte layout with chip id 5), SPI_SET_PARAMS, SPI_ATTACH,
FLASH_BEGIN/DATA/END, FLASH_DEFL_BEGIN/DATA/END (zlib, streamed),
SPI_FLASH_MD5 (the ROM answers 32 hex characters, the stub 16 raw bytes),
READ_FLASH_SLOW (64-byte blocks) and CHANGE_BAUDRATE.

RAM download (MEM_BEGIN/DATA/END) is accepted: esptool uploads its flasher
stub that way and runs it with MEM_END's entry point. The loader keeps the
uploaded segments; if the text segment is one of the stubs esptool ships for
the C3 (``esptool/targets/stub_flasher/*/esp32c3.json``), the chip "runs" it:
the stub greets with the SLIP packet ``OHAI`` and from then on the loader
answers as esptool's stub does (see ``StubMode`` below). Any other RAM
program is logged and the chip goes quiet, as a chip running code the
emulation cannot run would.

The stub, as esptool's loader.py expects it: two status bytes (not four);
SYNC answered with value 0 (how esptool tells a stub from the ROM);
SPI_FLASH_MD5 returns 16 raw bytes; READ_FLASH streams the flash in
``packet_size`` SLIP packets, at most ``max_unacked`` ahead of the host's
4-byte acknowledgements, then a 16-byte MD5 digest packet; ERASE_FLASH and
ERASE_REGION (whole sectors); FLASH_END/FLASH_DEFL_END with "stay" keep the
stub running, without it the stub soft-resets the chip, which comes back in
the ROM loader (the boot mode is latched at power-on/EN reset, not at a
software reset); RUN_USER_CODE boots the image in flash; errors carry the
stub's codes (0xC0-0xC9, 0xFF).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from amrkit.chips import CHIPS
from amrkit.twin.serial.flash import SECTOR_SIZE, FlashError, FlashMemory

log = logging.getLogger("amrkit.twin.serial")

# Opcodes (esptool/loader.py ESP_CMDS).
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
MEM_BEGIN = 0x05
MEM_END = 0x06
MEM_DATA = 0x07
SYNC = 0x08
WRITE_REG = 0x09
READ_REG = 0x0A
SPI_SET_PARAMS = 0x0B
SPI_ATTACH = 0x0D
READ_FLASH_SLOW = 0x0E
CHANGE_BAUDRATE = 0x0F
FLASH_DEFL_BEGIN = 0x10
FLASH_DEFL_DATA = 0x11
FLASH_DEFL_END = 0x12
SPI_FLASH_MD5 = 0x13
GET_SECURITY_INFO = 0x14
# Stub-only commands.
ERASE_FLASH = 0xD0
ERASE_REGION = 0xD1
READ_FLASH = 0xD2
RUN_USER_CODE = 0xD3

# ROM error codes (second status byte; esptool/util.py prints them as 0x01xx).
ERR_INVALID_MESSAGE = 0x05
ERR_FAILED = 0x06
ERR_CHECKSUM = 0x07
ERR_FLASH_WRITE = 0x08
ERR_FLASH_READ = 0x09
ERR_READ_LENGTH = 0x0A
ERR_DEFLATE = 0x0B
# The stub's error codes (esptool/util.py: 0xC000 "Bad data length" and on).
STUB_ERRORS = {
    ERR_INVALID_MESSAGE: 0xC0,  # bad data length
    ERR_CHECKSUM: 0xC1,
    ERR_FAILED: 0xC6,  # not in flash mode
    ERR_FLASH_WRITE: 0xC4,  # failed SPI operation
    ERR_FLASH_READ: 0xC4,
    ERR_READ_LENGTH: 0xC0,
    ERR_DEFLATE: 0xC7,
}
STUB_INVALID_COMMAND = 0xC3
STUB_BAD_BLOCKSIZE = 0xC2
OHAI = b"OHAI"  # what esptool's stub sends when it starts

CHECKSUM_MAGIC = 0xEF
SYNC_DATA = b"\x07\x07\x12\x20" + 32 * b"\x55"
SYNC_VALUE = 0x20120707  # any non-zero value: esptool takes 0 to mean "stub running"
READ_FLASH_SLOW_BLOCK = 64

SLIP_END = 0xC0
SLIP_ESC = 0xDB
SLIP_ESC_END = 0xDC
SLIP_ESC_ESC = 0xDD

CHIP = CHIPS["ESP32-C3"]  # the one chip whose ROM this emulates

# -- ESP32-C3 register map (esptool/targets/esp32c3.py) -------------------
CHIP_DETECT_MAGIC_REG = 0x40001000
CHIP_MAGIC_VALUE = 0x1B31506F  # what older esptools matched for the C3 (ECO3)
UART_CLKDIV_REG = 0x60000014
UART_DATE_REG = 0x6000007C
EFUSE_BASE = 0x60008800
EFUSE_BLOCK0 = EFUSE_BASE + 0x030  # security flags: all zero (no secure boot/encryption)
EFUSE_BLOCK1 = EFUSE_BASE + 0x044  # MAC (words 0-1), package and revision (words 3-5)
SPI_BASE = 0x60002000
SPI_CMD = SPI_BASE + 0x00
SPI_ADDR = SPI_BASE + 0x04
SPI_USR = SPI_BASE + 0x18
SPI_USR1 = SPI_BASE + 0x1C
SPI_USR2 = SPI_BASE + 0x20
SPI_MOSI_DLEN = SPI_BASE + 0x24
SPI_MISO_DLEN = SPI_BASE + 0x28
SPI_W0 = SPI_BASE + 0x58
SPI_CMD_USR = 1 << 18
RTC_CNTL_WDTCONFIG0 = 0x60008000 + 0x0090
RTC_CNTL_WDTCONFIG1 = 0x60008000 + 0x0094  # stage 0 timeout, in RTC slow clock ticks
RTC_WDT_EN = 1 << 31
RTC_SLOW_CLOCK_HZ = 136_000
# esptool's watchdog-reset enables the RTC WDT, then locks its registers with
# one more WRITE_REG and sleeps 0.5 s. Over RFC 2217 that last command can take
# 0.2 s (pyserial renegotiates the port around it), so the watchdog bites no
# sooner than this after being enabled, or the reset would eat its answer.
WATCHDOG_MIN_S = 0.3
# Chip revision v0.4 (a current ESP32-C3 QFN32): minor version low bits in
# BLOCK1 word 3 [20:18], package in word 3 [23:21], flash capability [29:27].
EFUSE_WORD3 = 4 << 18

# SPI flash: a GigaDevice GD25Q32-style 4 MB part (JEDEC C8 40 16) with an
# SFDP header, so esptool's flash detection and connection check pass.
JEDEC_MANUFACTURER = 0xC8
JEDEC_MEMORY_TYPE = 0x40
SFDP = b"SFDP\x06\x01\x00\xff" + b"\x00\x06\x01\x10\x30\x00\x00\xff"
SPIFLASH_RDID = 0x9F
SPIFLASH_RDSFDP = 0x5A


def slip_encode(packet: bytes) -> bytes:
    body = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


class SlipDecoder:
    """Splits a byte stream into SLIP packets; bytes between packets are noise."""

    def __init__(self) -> None:
        self._packet: bytearray | None = None
        self._escape = False

    def feed(self, data: bytes) -> list[bytes]:
        packets: list[bytes] = []
        for byte in data:
            if self._packet is None:
                if byte == SLIP_END:
                    self._packet = bytearray()
                continue
            if self._escape:
                self._escape = False
                if byte == SLIP_ESC_END:
                    self._packet.append(SLIP_END)
                elif byte == SLIP_ESC_ESC:
                    self._packet.append(SLIP_ESC)
                else:  # broken escape: drop the packet
                    self._packet = None
            elif byte == SLIP_ESC:
                self._escape = True
            elif byte == SLIP_END:
                if self._packet:
                    packets.append(bytes(self._packet))
                    self._packet = None
                # an empty packet is two ENDs in a row: the second one starts the next
            else:
                self._packet.append(byte)
        return packets


def checksum(data: bytes) -> int:
    state = CHECKSUM_MAGIC
    for byte in data:
        state ^= byte
    return state


class RomHost(Protocol):
    """What the ROM loader needs from the board it runs on."""

    flash: FlashMemory
    mac: bytes

    def send(self, data: bytes) -> None:
        """Bytes out of the chip's UART TX, to the host."""

    def run_from_flash(self, cause: str, delay: float = 0.0) -> None:
        """Leave the loader and boot the image in flash (FLASH_END, watchdog),
        ``delay`` seconds from now unless something resets the chip first."""

    def software_reset(self, cause: str) -> None:
        """A software reset: the chip restarts in the boot mode latched at its
        last power-on or EN reset (download mode, for a loader)."""


@functools.cache
def known_stubs() -> dict[bytes, str]:
    """SHA-256 of each flasher stub's text segment esptool ships for the C3 -> its file."""
    import esptool  # type: ignore[import-untyped]

    stubs: dict[bytes, str] = {}
    root = Path(esptool.__file__).parent / "targets" / "stub_flasher"
    for path in sorted(root.glob("*/esp32c3.json")):
        try:
            text = base64.b64decode(json.loads(path.read_text())["text"])
        except (OSError, ValueError, KeyError):
            continue
        stubs[hashlib.sha256(text).digest()] = f"{path.parent.name}/{path.name}"
    return stubs


class RomError(Exception):
    def __init__(self, error: int, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass
class _Download:
    """An open FLASH_BEGIN or FLASH_DEFL_BEGIN."""

    offset: int
    blocks: int
    block_size: int
    compressed: bool
    next_seq: int = 0
    position: int = 0  # next flash address written (compressed downloads)
    inflater: zlib._Decompress | None = None


@dataclass
class _RamDownload:
    """An open MEM_BEGIN: one segment of a program loaded into RAM."""

    address: int
    size: int
    blocks: int
    block_size: int
    data: bytearray = field(default_factory=bytearray)
    next_seq: int = 0


@dataclass
class _FlashRead:
    """A stub READ_FLASH in progress: packets go out ``max_unacked`` ahead of the acks."""

    offset: int
    length: int
    packet_size: int
    max_unacked: int
    sent: int = 0
    acked: int = 0
    md5: hashlib._Hash = field(default_factory=hashlib.md5)


@dataclass
class RomStats:
    """What the loader did in this session, for tests and the twin's log."""

    commands: dict[int, int] = field(default_factory=dict)  # opcode -> times seen
    rejected: list[str] = field(default_factory=list)
    baudrate: int | None = None
    flash_params_size: int | None = None
    stub: str | None = None  # the esptool stub file the chip "runs", once it does
    ram_segments: dict[int, int] = field(default_factory=dict)  # address -> bytes loaded


class Registers:
    """The few ESP32-C3 registers esptool touches, with the SPI flash controller's
    user-command engine (RDID, RDSFDP, status reads) behind SPI_CMD."""

    def __init__(self, mac: bytes, flash_size: int, on_watchdog: Callable[[float], None]) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
        self.values: dict[int, int] = {
            CHIP_DETECT_MAGIC_REG: CHIP_MAGIC_VALUE,
            UART_CLKDIV_REG: 40_000_000 // 115_200,
            UART_DATE_REG: 0x2008270,
            EFUSE_BLOCK1 + 0: int.from_bytes(mac[2:6], "big"),
            EFUSE_BLOCK1 + 4: int.from_bytes(mac[0:2], "big"),
            EFUSE_BLOCK1 + 12: EFUSE_WORD3,
        }
        self.known = set(self.values) | {
            *range(EFUSE_BASE, EFUSE_BASE + 0x200, 4),
            *range(SPI_BASE, SPI_BASE + 0x100, 4),
            *range(0x60008000, 0x60008100, 4),  # RTC_CNTL (watchdogs)
        }
        self.size_id = flash_size.bit_length() - 1  # JEDEC capacity byte: log2(bytes)
        self.unknown: set[int] = set()
        self._on_watchdog = on_watchdog

    def read(self, addr: int) -> int:
        if addr not in self.known and addr not in self.values and addr not in self.unknown:
            self.unknown.add(addr)
            log.info("ROM: read of unmodelled register %#010x answered 0", addr)
        return self.values.get(addr, 0)

    def write(self, addr: int, value: int, mask: int) -> None:
        old = self.values.get(addr, 0)
        self.values[addr] = (old & ~mask | value & mask) & 0xFFFFFFFF
        if addr not in self.known and addr not in self.unknown:
            self.unknown.add(addr)
            log.info("ROM: write to unmodelled register %#010x stored", addr)
        if addr == SPI_CMD and self.values[addr] & SPI_CMD_USR:
            self._spi_user_command()
            self.values[addr] &= ~SPI_CMD_USR
        elif addr == RTC_CNTL_WDTCONFIG0 and self.values[addr] & RTC_WDT_EN:
            ticks = self.values.get(RTC_CNTL_WDTCONFIG1, 0) or 200_000  # reset value
            self._on_watchdog(max(ticks / RTC_SLOW_CLOCK_HZ, WATCHDOG_MIN_S))

    def _spi_user_command(self) -> None:
        command = self.values.get(SPI_USR2, 0) & 0xFF
        miso_bits = self.values.get(SPI_MISO_DLEN, 0) + 1
        if command == SPIFLASH_RDID:
            result = JEDEC_MANUFACTURER | JEDEC_MEMORY_TYPE << 8 | self.size_id << 16
        elif command == SPIFLASH_RDSFDP:
            addr = self.values.get(SPI_ADDR, 0) & 0xFFFFFF
            chunk = SFDP[addr : addr + 4].ljust(4, b"\xff")
            result = int.from_bytes(chunk, "little")
        else:
            # Status reads answer 0 (nothing busy or protected); write-enable,
            # reset and power commands have nothing to do on a file.
            result = 0
        if miso_bits < 32:
            result &= (1 << miso_bits) - 1
        self.values[SPI_W0] = result


class RomLoader:
    """The loader a chip runs after a reset with its boot strapping pin low."""

    def __init__(self, host: RomHost) -> None:
        self.host = host
        self.stats = RomStats()
        self.registers = Registers(host.mac, host.flash.size, self._watchdog_fired)
        self._slip = SlipDecoder()
        self._download: _Download | None = None
        self._after_reply: list[Callable[[], None]] = []
        self._running = True
        self.stub = False  # esptool's flasher stub runs (after MEM_END with its entry)
        self._ram: _RamDownload | None = None
        self._ram_segments: dict[int, bytes] = {}
        self._read: _FlashRead | None = None

    # -- UartHandler ----------------------------------------------------

    def receive(self, data: bytes) -> None:
        for packet in self._slip.feed(data):
            if not self._running:
                return
            self._packet(packet)

    def stop(self) -> None:
        self._running = False
        self._download = None
        self._read = None

    # -- protocol ---------------------------------------------------------

    def _packet(self, packet: bytes) -> None:
        if self._read is not None:
            self._read_ack(packet)
            return
        if len(packet) < 8 or packet[0] != 0x00:
            return  # not a command: the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", packet)
        data = packet[8:]
        self.stats.commands[op] = self.stats.commands.get(op, 0) + 1
        try:
            if len(data) != size:
                raise RomError(ERR_INVALID_MESSAGE, f"length field {size}, got {len(data)}")
            if op == SYNC:
                if data != SYNC_DATA:
                    raise RomError(ERR_INVALID_MESSAGE, "malformed SYNC")
                for _ in range(8):  # the stub answers with 0: esptool's "stub running"
                    self._reply(op, 0 if self.stub else SYNC_VALUE)
                return
            value, payload = self._command(op, chk, data)
        except _NoReply:
            return
        except _StubError as e:
            self.stats.rejected.append(f"{op:#04x}: {e}")
            log.info("stub: command %#04x failed: %s", op, e)
            self._reply(op, 0, status=1, error=e.error)
            self._after_reply.clear()
            return
        except RomError as e:
            self.stats.rejected.append(f"{op:#04x}: {e}")
            log.info("%s: command %#04x failed: %s", self._name, op, e)
            error = STUB_ERRORS.get(e.error, e.error) if self.stub else e.error
            self._reply(op, 0, status=1, error=error)
            self._after_reply.clear()
            return
        self._reply(op, value, payload)
        actions, self._after_reply = self._after_reply, []
        for action in actions:
            action()

    def _reply(
        self, op: int, value: int, payload: bytes = b"", status: int = 0, error: int = 0
    ) -> None:
        # The ROM sends four status bytes, the stub two.
        body = payload + (bytes((status, error)) if self.stub else bytes((status, error, 0, 0)))
        self.host.send(slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body))

    @property
    def _name(self) -> str:
        return "stub" if self.stub else "ROM"

    def _command(self, op: int, chk: int, data: bytes) -> tuple[int, bytes]:
        if self.stub and op in _STUB_ONLY_HANDLERS:
            return _STUB_ONLY_HANDLERS[op](self, data)
        if op == READ_REG:
            (addr,) = _unpack("<I", data)
            return self.registers.read(addr), b""
        if op == WRITE_REG:
            if not data or len(data) % 16:
                raise RomError(ERR_INVALID_MESSAGE, "WRITE_REG wants 16-byte groups")
            for at in range(0, len(data), 16):
                addr, value, mask, _delay_us = struct.unpack_from("<IIII", data, at)
                self.registers.write(addr, value, mask)
            return 0, b""
        if op == GET_SECURITY_INFO:
            # flags, flash_crypt_cnt, 7 key purposes, chip id, API version
            return 0, struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, CHIP.image_id, 3)
        if op == SPI_ATTACH:
            _unpack("<II", data)
            return 0, b""
        if op == SPI_SET_PARAMS:
            _id, total, _block, _sector, _page, _mask = _unpack("<IIIIII", data)
            self.stats.flash_params_size = total
            return 0, b""
        if op == CHANGE_BAUDRATE:
            baud, _old = _unpack("<II", data)
            self.stats.baudrate = baud
            return 0, b""
        if op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            return self._begin(op == FLASH_DEFL_BEGIN, data)
        if op in (FLASH_DATA, FLASH_DEFL_DATA):
            return self._data(op == FLASH_DEFL_DATA, chk, data)
        if op in (FLASH_END, FLASH_DEFL_END):
            (stay,) = _unpack("<I", data)
            self._download = None
            if self.stub and stay:
                return 0, b""  # the stub stays: esptool ends each write like this
            if self.stub or not stay:
                self._after_reply.append(self._software_reset)
            else:
                self._after_reply.append(lambda: self._leave("run user code"))
            return 0, b""
        if op == SPI_FLASH_MD5:
            addr, size, _, _ = _unpack("<IIII", data)
            try:
                digest = self.host.flash.md5(addr, size)
            except FlashError as e:
                raise RomError(ERR_FLASH_READ, str(e)) from None
            # The ROM answers 32 hex characters, the stub the 16 raw bytes.
            return 0, bytes.fromhex(digest) if self.stub else digest.encode()
        if op == READ_FLASH_SLOW and not self.stub:
            addr, size = _unpack("<II", data)
            if size > READ_FLASH_SLOW_BLOCK:
                raise RomError(ERR_READ_LENGTH, f"READ_FLASH_SLOW of {size} bytes (max 64)")
            try:
                length = max(0, min(READ_FLASH_SLOW_BLOCK, self.host.flash.size - addr))
                block = self.host.flash.read(addr, length)
            except FlashError as e:
                raise RomError(ERR_FLASH_READ, str(e)) from None
            return 0, block.ljust(READ_FLASH_SLOW_BLOCK, b"\xff")
        if op in (MEM_BEGIN, MEM_DATA, MEM_END) and not self.stub:
            return self._ram_download(op, chk, data)
        if self.stub:
            raise _StubInvalid(f"the stub does not implement command {op:#04x}")
        raise RomError(ERR_INVALID_MESSAGE, f"unsupported command {op:#04x}")

    # -- RAM download and the stub -----------------------------------------

    def _ram_download(self, op: int, chk: int, data: bytes) -> tuple[int, bytes]:
        if op == MEM_BEGIN:
            size, blocks, block_size, address = _unpack("<IIII", data)
            if block_size == 0 and blocks:
                raise RomError(ERR_INVALID_MESSAGE, "zero block size")
            self._ram = _RamDownload(address, size, blocks, block_size)
            return 0, b""
        if op == MEM_DATA:
            ram = self._ram
            if ram is None:
                raise RomError(ERR_FAILED, "RAM data without MEM_BEGIN")
            length, seq, _, _ = _unpack("<IIII", data[:16])
            block = data[16:]
            if len(block) != length:
                raise RomError(
                    ERR_INVALID_MESSAGE, f"block length field {length}, got {len(block)}"
                )
            if checksum(block) != chk & 0xFF:
                raise RomError(ERR_CHECKSUM, f"RAM block {seq} checksum mismatch")
            if seq != ram.next_seq:
                raise RomError(ERR_FAILED, f"RAM block {seq} out of sequence")
            ram.data += block
            ram.next_seq += 1
            if len(ram.data) >= ram.size:
                self._ram_segments[ram.address] = bytes(ram.data[: ram.size])
                self.stats.ram_segments[ram.address] = ram.size
            return 0, b""
        no_entry, entry = _unpack("<II", data)
        self._ram = None
        if not no_entry:
            self._after_reply.append(lambda: self._run_ram(entry))
        return 0, b""

    def _run_ram(self, entry: int) -> None:
        """Jump to ``entry`` in RAM: esptool's stub, or a program the twin cannot run."""
        segments = self._ram_segments
        owner = next((d for a, d in segments.items() if a <= entry < a + len(d)), None)
        stub = known_stubs().get(hashlib.sha256(owner).digest()) if owner is not None else None
        if stub is None:
            log.warning(
                "ROM: RAM program (segments %s) entered at %#010x is not a flasher stub "
                "esptool ships: the chip runs it and the emulation goes quiet",
                ", ".join(f"{a:#010x}+{len(d)}" for a, d in segments.items()),
                entry,
            )
            self._running = False
            return
        self.stub = True
        self.stats.stub = stub
        self._ram_segments = {}
        log.info("ROM: esptool's flasher stub %s runs from %#010x", stub, entry)
        self.host.send(slip_encode(OHAI))

    def _stub_erase_flash(self, data: bytes) -> tuple[int, bytes]:
        self.host.flash.erase(0, self.host.flash.size)
        return 0, b""

    def _stub_erase_region(self, data: bytes) -> tuple[int, bytes]:
        offset, size = _unpack("<II", data)
        if offset % SECTOR_SIZE or size % SECTOR_SIZE:
            raise _StubError(STUB_BAD_BLOCKSIZE, "erase region is not whole 4 KiB sectors")
        try:
            self.host.flash.erase(offset, size)
        except FlashError as e:
            raise RomError(ERR_FLASH_WRITE, str(e)) from None
        return 0, b""

    def _stub_read_flash(self, data: bytes) -> tuple[int, bytes]:
        offset, length, packet_size, max_unacked = _unpack("<IIII", data)
        if packet_size == 0 or max_unacked == 0:
            raise _StubError(STUB_BAD_BLOCKSIZE, "zero packet size or window")
        try:
            self.host.flash.read(offset, length)  # range check before answering
        except FlashError as e:
            raise RomError(ERR_FLASH_READ, str(e)) from None
        self._read = _FlashRead(offset, length, packet_size, max_unacked)
        self._after_reply.append(self._read_send)
        return 0, b""

    def _read_send(self) -> None:
        read = self._read
        if read is None:
            return
        while read.sent < read.length and read.sent - read.acked < (
            read.max_unacked * read.packet_size
        ):
            chunk = self.host.flash.read(
                read.offset + read.sent, min(read.packet_size, read.length - read.sent)
            )
            read.md5.update(chunk)
            read.sent += len(chunk)
            self.host.send(slip_encode(chunk))
        if read.acked >= read.length:
            self._read = None
            self.host.send(slip_encode(read.md5.digest()))

    def _read_ack(self, packet: bytes) -> None:
        read = self._read
        assert read is not None
        if len(packet) != 4:
            log.info("stub: %d-byte packet during READ_FLASH, not an ack: ignored", len(packet))
            return
        (read.acked,) = struct.unpack("<I", packet)
        self._read_send()

    def _stub_run_user_code(self, data: bytes) -> tuple[int, bytes]:
        self._leave("run user code")
        raise _NoReply

    def _software_reset(self) -> None:
        self._running = False
        self.host.software_reset("reboot")

    def _begin(self, compressed: bool, data: bytes) -> tuple[int, bytes]:
        if len(data) == 20:
            size, blocks, block_size, offset, encrypted = struct.unpack("<IIIII", data)
        else:
            size, blocks, block_size, offset = _unpack("<IIII", data)
            encrypted = 0
        if encrypted:
            raise RomError(ERR_FAILED, "encrypted flash writes are not emulated")
        if block_size == 0 and blocks:
            raise RomError(ERR_INVALID_MESSAGE, "zero block size")
        try:
            self.host.flash.erase(offset, size)
        except FlashError as e:
            raise RomError(ERR_FLASH_WRITE, str(e)) from None
        self._download = _Download(
            offset,
            blocks,
            block_size,
            compressed,
            position=offset,
            inflater=zlib.decompressobj() if compressed else None,
        )
        return 0, b""

    def _data(self, compressed: bool, chk: int, data: bytes) -> tuple[int, bytes]:
        down = self._download
        if down is None or down.compressed != compressed:
            raise RomError(ERR_FAILED, "flash data without a matching begin")
        length, seq, _, _ = _unpack("<IIII", data[:16])
        block = data[16:]
        if len(block) != length:
            raise RomError(ERR_INVALID_MESSAGE, f"block length field {length}, got {len(block)}")
        if checksum(block) != chk & 0xFF:
            raise RomError(ERR_CHECKSUM, f"block {seq} checksum mismatch")
        if seq != down.next_seq and seq != down.next_seq - 1:
            raise RomError(ERR_FAILED, f"block {seq} out of sequence (expected {down.next_seq})")
        if seq >= down.blocks:
            raise RomError(ERR_FAILED, f"block {seq} beyond the {down.blocks} announced")
        try:
            if compressed:
                if seq != down.next_seq:  # a repeat of the last block: already inflated
                    return 0, b""
                assert down.inflater is not None
                try:
                    plain = down.inflater.decompress(block)
                except zlib.error as e:
                    raise RomError(ERR_DEFLATE, f"inflate failed: {e}") from None
                self.host.flash.program(down.position, plain)
                down.position += len(plain)
            else:
                self.host.flash.program(down.offset + seq * down.block_size, block)
        except FlashError as e:
            raise RomError(ERR_FLASH_WRITE, str(e)) from None
        down.next_seq = seq + 1
        return 0, b""

    def _leave(self, cause: str) -> None:
        self._running = False
        self.host.run_from_flash(cause)

    def _watchdog_fired(self, delay: float) -> None:
        self._after_reply.append(lambda: self.host.run_from_flash("RTC watchdog", delay))


class _StubError(Exception):
    """A failure with the stub's own error code."""

    def __init__(self, error: int, message: str) -> None:
        super().__init__(message)
        self.error = error


class _StubInvalid(_StubError):
    def __init__(self, message: str) -> None:
        super().__init__(STUB_INVALID_COMMAND, message)


class _NoReply(Exception):
    """The command ends without an answer (the chip resets)."""


_STUB_ONLY_HANDLERS: dict[int, Callable[[RomLoader, bytes], tuple[int, bytes]]] = {
    ERASE_FLASH: RomLoader._stub_erase_flash,
    ERASE_REGION: RomLoader._stub_erase_region,
    READ_FLASH: RomLoader._stub_read_flash,
    RUN_USER_CODE: RomLoader._stub_run_user_code,
}


def _unpack(fmt: str, data: bytes) -> tuple[int, ...]:
    want = struct.calcsize(fmt)
    if len(data) < want:
        raise RomError(ERR_INVALID_MESSAGE, f"{len(data)} data bytes, wanted {want}")
    return struct.unpack_from(fmt, data)
