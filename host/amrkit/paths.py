"""Where the firmware tree, the chip emulations and the unix-port binary are."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent


def firmware_dir() -> Path:
    """The firmware tree; $AMR_FIRMWARE overrides the checkout's firmware/."""
    return Path(os.environ.get("AMR_FIRMWARE", REPO_DIR / "firmware")).resolve()


def firmware_module(name: str) -> ModuleType:
    """Import a pure firmware module (amr.<name>) under CPython."""
    path = str(firmware_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(f"amr.{name}")


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
