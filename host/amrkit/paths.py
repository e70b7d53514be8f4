"""Where the firmware tree, the chip emulations and the unix-port binary are."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent


def firmware_dir() -> Path:
    """The firmware tree; $AMR_FIRMWARE overrides the checkout's firmware/."""
    return Path(os.environ.get("AMR_FIRMWARE", REPO_DIR / "firmware")).resolve()


def platform_dir() -> Path:
    """MicroPython emulations of machine, esp32, bluetooth and time."""
    return PACKAGE_DIR / "twin" / "platform"


def boards_dir() -> Path:
    return REPO_DIR / "hardware" / "boards"


def micropython_binary() -> str:
    """$MICROPYTHON, else the `micropython` next to this interpreter, else PATH."""
    explicit = os.environ.get("MICROPYTHON")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise FileNotFoundError(
            "no MicroPython unix port found: run `make test` to create .venv, "
            "or set MICROPYTHON to a micropython binary"
        )
    return found
