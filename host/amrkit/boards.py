"""Board profiles (hardware/boards/*.toml): read and validated against the
chip table, as the Board that the build, the twin and the CLI use."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amrkit.chips import CHIPS
from amrkit.paths import boards_dir

DEFAULT_BOARD = "esp32c3-coin"
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


class ProfileError(ValueError):
    """The board profile is missing, or has missing keys, ill-typed or impossible values."""


@dataclass(frozen=True)
class Board:
    name: str
    chip: str
    description: str
    wake_to_app_ms: int
    button_pin: int
    button_active_low: bool
    button_pull: str
    chemistry: str
    nominal_mah: int
    battery_adc_pin: int
    divider_enable_pin: int
    r_top_ohm: int
    r_bottom_ohm: int
    settle_ms: int
    brownout_mv: int
    currents_ua: dict[str, float]

    def adc_uv(self, cell_mv: int) -> int:
        """Microvolts the ADC sees for a cell voltage, through the divider."""
        return cell_mv * 1000 * self.r_bottom_ohm // (self.r_top_ohm + self.r_bottom_ohm)

    def mac_for(self, unit: str) -> str:
        """A stable, locally administered MAC for a virtual unit, as hex."""
        digest = bytearray(hashlib.sha256(f"{self.name}/{unit}".encode()).digest()[:6])
        digest[0] = (digest[0] | 0x02) & 0xFE
        return digest.hex()


def profile_path(name: str) -> Path:
    return boards_dir() / f"{name}.toml"


def load_board(name: str = DEFAULT_BOARD) -> Board:
    """The board hardware/boards/<name>.toml describes; ProfileError if there is none
    or it is invalid."""
    return load_profile(profile_path(name))


def load_profile(path: Path | str) -> Board:
    """Read and validate a board profile file; ProfileError names the file and every bad key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            profile = tomllib.load(f)
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in boards_dir().glob("*.toml")))
        raise ProfileError(f"{path}: no such board profile; known boards: {known}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, no permission
        raise ProfileError(f"{path}: cannot read the board profile: {exc.strerror}") from None
    errors = _check_types(profile)
    if not errors:
        errors = _check_values(profile, path.stem)
    if errors:
        raise ProfileError(f"{path}: invalid board profile:\n  " + "\n  ".join(errors))
    board, button, battery = profile["board"], profile["button"], profile["battery"]
    return Board(
        name=board["name"],
        chip=board["chip"],
        description=board["description"],
        wake_to_app_ms=board["wake_to_app_ms"],
        button_pin=button["pin"],
        button_active_low=button["active_low"],
        button_pull=button["pull"],
        chemistry=battery["chemistry"],
        nominal_mah=battery["nominal_mah"],
        battery_adc_pin=battery["adc_pin"],
        divider_enable_pin=battery["divider_enable_pin"],
        r_top_ohm=battery["r_top_ohm"],
        r_bottom_ohm=battery["r_bottom_ohm"],
        settle_ms=battery["settle_ms"],
        brownout_mv=battery["brownout_mv"],
        currents_ua=dict(profile["currents_ua"]),
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
    if chip is None or not chip.has_boards:
        known = ", ".join(name for name, c in CHIPS.items() if c.has_boards)
        errors.append(f"[board] chip: unknown chip {board['chip']!r}; known: {known}")
        return errors
    pins = {
        "[button] pin": button["pin"],
        "[battery] adc_pin": battery["adc_pin"],
        "[battery] divider_enable_pin": battery["divider_enable_pin"],
    }
    for where, pin in pins.items():
        if not 0 <= pin < chip.gpios:
            errors.append(f"{where}: GPIO{pin} does not exist on the {chip.name}")
    if button["pin"] not in chip.wake:
        errors.append(
            f"[button] pin: GPIO{button['pin']} cannot wake the {chip.name} from deep sleep;"
            f" use one of {_pin_list(chip.wake)}"
        )
    if battery["adc_pin"] not in chip.adc1:
        errors.append(
            f"[battery] adc_pin: GPIO{battery['adc_pin']} is not an ADC1 pin on the"
            f" {chip.name}; use one of {_pin_list(chip.adc1)}"
        )
    if battery["divider_enable_pin"] in chip.input_only:
        errors.append(
            f"[battery] divider_enable_pin: GPIO{battery['divider_enable_pin']} is input-only"
        )
    if len(set(pins.values())) != len(pins):
        errors.append(f"pins must be distinct: {', '.join(f'{k} = {v}' for k, v in pins.items())}")
    return errors


def _pin_list(pins: frozenset[int]) -> str:
    return ", ".join(str(p) for p in sorted(pins))
