"""The local cache of MicroPython images (`amr images add/list`, `amr flash`).

A directory (``--images DIR``, else ``$AMR_IMAGES``, else the user's data
directory: ``$XDG_DATA_HOME/amr/images`` or ``~/.local/share/amr/images``)
holding each image as ``<sha256>.bin`` and a JSON manifest
(``manifest.json``) recording, per image, its SHA-256, size, board, chip
and when it was added. `amr flash` without ``--image`` takes the newest image
for the board and checks its hash against the manifest first, so an image
altered in the cache is refused.

Where images come from: the stock MicroPython build for the board's chip
from MicroPython's downloads page (for the ESP32-C3 reference board
https://micropython.org/download/ESP32_GENERIC_C3/, the ``.bin`` written at
0x0); for the twin, ``amrkit.twin.serial.image.stand_in_image()`` (what
`amr sim` units carry).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amrkit.boards import Board
from amrkit.esp_image import ImageError, read_header

MANIFEST = "manifest.json"
IMAGES_ENV = "AMR_IMAGES"
STOCK_IMAGE_HELP = (
    "Stock MicroPython images are on MicroPython's downloads page, "
    "e.g. https://micropython.org/download/ESP32_GENERIC_C3/ for the ESP32-C3 "
    "(the .bin written at 0x0); for the twin, amrkit.twin.serial.image.stand_in_image()."
)


class CacheError(ValueError):
    """An image that cannot go into, or come out of, the cache (the reason is the message)."""


@dataclass(frozen=True)
class CachedImage:
    sha256: str
    file: str
    size: int
    board: str
    chip: str
    source: str  # the name it was added from
    added: float  # Unix time

    def path(self, cache: Path) -> Path:
        return cache / self.file


def default_cache_dir() -> Path:
    env = os.environ.get(IMAGES_ENV)
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "amr" / "images"


def cache_dir(explicit: Path | None = None) -> Path:
    return explicit if explicit is not None else default_cache_dir()


def list_images(cache: Path) -> list[CachedImage]:
    """The cache's images, oldest first (none if there is no cache yet)."""
    path = cache / MANIFEST
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        return [CachedImage(**entry) for entry in raw["images"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheError(f"the image cache manifest {path} is unreadable: {err}") from err


def _save(cache: Path, images: list[CachedImage]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"images": [asdict(i) for i in images]}, indent=2) + "\n")
    tmp.replace(cache / MANIFEST)


def check_image_for_board(data: bytes, board: Board, name: str) -> None:
    """CacheError unless ``data`` is an app image built for the board's chip."""
    try:
        header = read_header(data)
    except ImageError as err:
        raise CacheError(f"{name} is not an ESP image: {err}") from err
    if header.chip is None or header.chip.name != board.chip:
        raise CacheError(
            f"{name} is built for {header.chip_name}, board {board.name} has an {board.chip}"
        )


def add_image(cache: Path, source: Path, board: Board) -> CachedImage:
    """Copy an image into the cache for a board, after checking its chip."""
    try:
        data = source.read_bytes()
    except OSError as err:
        raise CacheError(f"cannot read {source}: {err.strerror or err}") from err
    check_image_for_board(data, board, str(source))
    sha = hashlib.sha256(data).hexdigest()
    images = [i for i in list_images(cache) if not (i.sha256 == sha and i.board == board.name)]
    entry = CachedImage(
        sha, f"{sha}.bin", len(data), board.name, board.chip, source.name, time.time()
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{sha}.bin.tmp"
    tmp.write_bytes(data)
    tmp.replace(entry.path(cache))
    _save(cache, [*images, entry])
    return entry


def verified_bytes(cache: Path, image: CachedImage) -> bytes:
    """The image's bytes, after checking them against the manifest's SHA-256."""
    try:
        data = image.path(cache).read_bytes()
    except OSError as err:
        raise CacheError(
            f"cached image {image.file} is missing from {cache}: add it again with amr images add"
        ) from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != image.sha256:
        raise CacheError(
            f"cached image {image.path(cache)} does not match the cache manifest "
            f"(SHA-256 {actual[:16]}..., recorded {image.sha256[:16]}...): it was altered or "
            "corrupted; refusing to flash it. Delete it and add the image again with amr images add"
        )
    return data


def newest_image(cache: Path, board: Board) -> tuple[CachedImage, bytes]:
    """The newest cached image for a board, verified against the manifest."""
    mine = [i for i in list_images(cache) if i.board == board.name]
    if not mine:
        raise CacheError(
            f"no cached image for board {board.name} in {cache}: add one with "
            f"`amr images add FILE --board {board.name}` or pass --image. {STOCK_IMAGE_HELP}"
        )
    image = max(mine, key=lambda i: i.added)
    return image, verified_bytes(cache, image)
