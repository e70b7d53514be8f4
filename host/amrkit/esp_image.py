"""The header of an ESP app image, as the chip's boot ROM and esptool read it.

An ESP32-family image (MicroPython's ``firmware.bin`` for the C3 starts with
its second-stage bootloader, which is one) begins with esptool's layout
(``esptool/bin_image.py``, ``ESP32FirmwareImage``):

    common header   <BBBBI  magic 0xE9, segment count, flash mode,
                            flash size/freq, entry address
    extended header <BBBBHBHH4BB  WP pin, drive strengths (3 bytes), chip id,
                            min rev, min/max full rev, 4 reserved, hash appended

The chip id says which chip the image was built for; flashing refuses an
image for another chip before anything is written. The twin's boot check
(``amrkit.twin.serial.image``) reads the same layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from amrkit.chips import BY_IMAGE_ID, Chip

IMAGE_MAGIC = 0xE9
COMMON_HEADER = struct.Struct("<BBBBI")
EXTENDED_HEADER = struct.Struct("<BBBBHBHH4BB")
HEADER_SIZE = COMMON_HEADER.size + EXTENDED_HEADER.size
FLASH_MODES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT"}


class ImageError(ValueError):
    """Not an ESP app image (or one for a chip the toolkit does not know)."""


@dataclass(frozen=True)
class ImageHeader:
    chip_id: int
    chip: Chip | None  # None: an id the toolkit's chip table does not know
    segments: int
    entry: int
    flash_mode: str
    wp_pin: int
    hash_appended: bool

    @property
    def chip_name(self) -> str:
        return self.chip.name if self.chip else f"unknown chip (image chip id {self.chip_id})"


def read_header(data: bytes) -> ImageHeader:
    """The header of an image's first bytes; ImageError if they are not one."""
    if len(data) < HEADER_SIZE:
        raise ImageError(f"{len(data)} bytes: too short for an ESP image header")
    magic, count, mode, _size_freq, entry = COMMON_HEADER.unpack_from(data)
    if magic != IMAGE_MAGIC:
        raise ImageError(
            f"not an ESP image: first byte {magic:#04x}, an image starts with {IMAGE_MAGIC:#04x}"
        )
    ext = EXTENDED_HEADER.unpack_from(data, COMMON_HEADER.size)
    wp_pin, chip_id, hash_appended = ext[0], ext[4], ext[-1]
    return ImageHeader(
        chip_id=chip_id,
        chip=BY_IMAGE_ID.get(chip_id),
        segments=count,
        entry=entry,
        flash_mode=FLASH_MODES.get(mode, f"mode {mode}"),
        wp_pin=wp_pin,
        hash_appended=bool(hash_appended),
    )
