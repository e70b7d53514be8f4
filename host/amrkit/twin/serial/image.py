"""What the chip's boot ROM checks before it runs anything from flash.

An ESP32-C3 boots the image at flash offset 0x0 (the second-stage
bootloader; MicroPython's combined ``firmware.bin`` for the C3 starts with it
and is written at 0x0). The ROM reads the image header, refuses an image
built for another chip, loads the segments and checks the XOR checksum and,
when the image says it carries one, the SHA-256 digest. The layout is
esptool's (``esptool/bin_image.py``, ``ESP32FirmwareImage``):

    common header   <BBBBI  magic 0xE9, segment count, flash mode,
                            flash size/freq, entry address
    extended header <BBBBHBHH4BB  WP pin, drive strengths (3 bytes), chip id,
                            min rev, min/max full rev, 4 reserved, hash appended
    segments        <II + data  load address, length
    padding to 16 bytes, the last of which is the checksum (0xEF XOR all
    segment bytes), then the SHA-256 of everything before it (if appended)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amrkit.chips import BY_IMAGE_ID, chip_named
from amrkit.esp_image import COMMON_HEADER, EXTENDED_HEADER, FLASH_MODES, IMAGE_MAGIC

CHECKSUM_MAGIC = 0xEF
MAX_SEGMENTS = 16
SEGMENT_HEADER = struct.Struct("<II")

Reader = Callable[[int, int], bytes]  # read(offset, length) -> bytes (short at the end)


@dataclass(frozen=True)
class BootCheck:
    """The verdict on the image at the boot offset.

    ``ok`` says whether the ROM would run it; ``reason`` says why not (or
    summarises the image when it is fine).
    """

    ok: bool
    reason: str
    chip_id: int | None = None
    entry: int | None = None
    flash_mode: str | None = None
    wp_pin: int | None = None
    segments: tuple[tuple[int, int], ...] = field(default=())  # (load address, length)
    length: int = 0  # bytes the image occupies in flash, digest included


def _fail(reason: str, chip_id: int | None = None, entry: int | None = None) -> BootCheck:
    return BootCheck(False, reason, chip_id=chip_id, entry=entry)


def check_image_bytes(read: Reader, chip: str = "ESP32-C3", offset: int = 0) -> BootCheck:
    """Check the image that ``read(offset, length)`` returns bytes of."""
    expected = chip_named(chip).image_id
    head = read(offset, COMMON_HEADER.size + EXTENDED_HEADER.size)
    if len(head) < COMMON_HEADER.size + EXTENDED_HEADER.size:
        return _fail("no image: flash ends inside the image header")
    magic, count, mode, _size_freq, entry = COMMON_HEADER.unpack_from(head)
    if magic != IMAGE_MAGIC:
        word = struct.unpack_from("<I", head)[0]
        if head[:4] == b"\xff\xff\xff\xff":
            return _fail(f"no image at {offset:#x}: flash is erased (invalid header: {word:#010x})")
        return _fail(f"no image at {offset:#x}: invalid header: {word:#010x}")
    ext = EXTENDED_HEADER.unpack_from(head, COMMON_HEADER.size)
    wp_pin, chip_id, hash_appended = ext[0], ext[4], ext[-1]
    if chip_id != expected:
        found = BY_IMAGE_ID.get(chip_id)
        name = found.name if found else "unknown chip"
        return _fail(
            f"image is for chip id {chip_id} ({name}), this board is {chip}",
            chip_id=chip_id,
            entry=entry,
        )
    if not 0 < count <= MAX_SEGMENTS:
        return _fail(f"invalid segment count {count} (1 to {MAX_SEGMENTS})", chip_id=chip_id)
    if hash_appended not in (0, 1):
        return _fail(f"invalid hash-appended flag {hash_appended:#04x}", chip_id=chip_id)

    pos = offset + len(head)
    checksum = CHECKSUM_MAGIC
    segments: list[tuple[int, int]] = []
    sha = hashlib.sha256(head)
    for index in range(count):
        seg_head = read(pos, SEGMENT_HEADER.size)
        if len(seg_head) < SEGMENT_HEADER.size:
            return _fail(f"segment {index} header is past the end of flash", chip_id=chip_id)
        addr, length = SEGMENT_HEADER.unpack(seg_head)
        data = read(pos + SEGMENT_HEADER.size, length)
        if len(data) < length:
            return _fail(
                f"segment {index} ({length} bytes at {addr:#010x}) runs past the end of flash",
                chip_id=chip_id,
            )
        sha.update(seg_head)
        sha.update(data)
        checksum ^= _xor_all(data)
        segments.append((addr, length))
        pos += SEGMENT_HEADER.size + length
    pad = 15 - (pos - offset) % 16
    tail = read(pos, pad + 1)
    if len(tail) < pad + 1:
        return _fail("image checksum is past the end of flash", chip_id=chip_id)
    sha.update(tail)
    pos += pad + 1
    if tail[-1] != checksum:
        return _fail(
            f"checksum failure: calculated {checksum:#04x}, stored {tail[-1]:#04x}",
            chip_id=chip_id,
        )
    if hash_appended:
        stored = read(pos, 32)
        if stored != sha.digest():
            return _fail("SHA-256 comparison failed", chip_id=chip_id)
        pos += 32
    return BootCheck(
        True,
        f"{chip} image, {count} segments, entry {entry:#010x}",
        chip_id=chip_id,
        entry=entry,
        flash_mode=FLASH_MODES.get(mode, f"mode {mode}"),
        wp_pin=wp_pin,
        segments=tuple(segments),
        length=pos - offset,
    )


def boot_image_check(flash_path: Path, chip: str = "ESP32-C3", offset: int = 0x0) -> BootCheck:
    """Would the chip boot the image in ``flash_path`` (a flash.bin)?"""
    if not flash_path.exists():
        return _fail(f"no image: {flash_path} does not exist")
    with flash_path.open("rb") as f:

        def read(at: int, length: int) -> bytes:
            f.seek(at)
            return f.read(length)

        return check_image_bytes(read, chip, offset)


def _xor_all(data: bytes) -> int:
    if not data:
        return 0
    # XOR of all bytes: fold a big integer down to one byte.
    value = int.from_bytes(data, "little")
    width = len(data) * 8
    while width > 8:
        width = (width + 15) // 16 * 8  # half the width, rounded up to whole bytes
        value = (value ^ (value >> width)) & ((1 << width) - 1)
    return value


def stand_in_image(entry: int = 0x40380000) -> bytes:
    """A complete ESP32-C3 app image, made by esptool's own image writer,
    standing in for the MicroPython build a real unit carries: the twin runs
    the unix port whatever the image holds, but only boots a valid one."""
    from esptool.bin_image import (  # type: ignore[import-untyped]
        ELFSection,
        ESP32C3FirmwareImage,
    )

    image = ESP32C3FirmwareImage()
    image.entrypoint = entry
    image.flash_mode = 2  # DIO
    image.segments = [ELFSection(b".iram0.text", entry, b"AMR twin stand-in image".ljust(64), 0)]
    data: bytes = image.save(None)
    return data
