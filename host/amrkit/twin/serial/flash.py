"""The unit's SPI NOR flash, kept as a file (``flash.bin``) in its directory.

Like the real part: erased bytes read 0xFF, erasing works on whole 4 KiB
sectors, and programming can only clear bits (new = old AND data), so writing
over data that was not erased first corrupts it, as it would on hardware.
Every operation goes straight to the file, so what the ROM loader writes
persists across resets, server restarts and twin runs.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

SECTOR_SIZE = 0x1000
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024  # the reference board's 4 MB part
FLASH_FILE = "flash.bin"


class FlashError(ValueError):
    """An operation outside the flash chip."""


class FlashMemory:
    """A NOR flash chip backed by a file that is read and written in place."""

    def __init__(self, path: Path, size: int = DEFAULT_FLASH_SIZE) -> None:
        if size <= 0 or size % SECTOR_SIZE:
            raise ValueError(f"flash size {size} is not a whole number of 4 KiB sectors")
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with path.open("wb") as f:
                f.write(b"\xff" * size)
        else:
            have = path.stat().st_size
            if have > size:
                raise ValueError(f"{path} holds {have} bytes, more than the {size}-byte flash")
            if have < size:  # an older, smaller image: the rest is erased flash
                with path.open("ab") as f:
                    f.write(b"\xff" * (size - have))

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashError(
                f"{length} bytes at {offset:#x} are outside the {self.size:#x}-byte flash"
            )

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        with self._lock, self.path.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    def erase(self, offset: int, length: int) -> tuple[int, int]:
        """Erase every sector the range touches; returns the erased (start, end)."""
        start = offset - offset % SECTOR_SIZE
        end = -(-(offset + length) // SECTOR_SIZE) * SECTOR_SIZE
        self._check(start, end - start)
        if end > start:
            with self._lock, self.path.open("r+b") as f:
                f.seek(start)
                f.write(b"\xff" * (end - start))
        return start, end

    def program(self, offset: int, data: bytes) -> None:
        """Program bytes: bits can only go from 1 to 0 (NOR flash)."""
        self._check(offset, len(data))
        if not data:
            return
        with self._lock, self.path.open("r+b") as f:
            f.seek(offset)
            old = f.read(len(data))
            merged = (int.from_bytes(old, "big") & int.from_bytes(data, "big")).to_bytes(
                len(data), "big"
            )
            f.seek(offset)
            f.write(merged)

    def md5(self, offset: int, length: int) -> str:
        return hashlib.md5(self.read(offset, length)).hexdigest()
