"""Board profiles (hardware/boards/*.toml): read and validated against the
chip table, as the Board that the build, the twin, the power model and the
CLI use. hardware/README.md describes the format.

Every physical number in a profile (a current, a time, a threshold) is
written as `{ value = N, source = "..." }`, so that nobody has to guess
whether a figure was measured, read from a datasheet or estimated; design
choices (pins, resistors) are plain values."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amrkit.chips import CHIPS
from amrkit.paths import boards_dir

DEFAULT_BOARD = "esp32c3-coin"
PULLS = ("up", "down", "none")
# stock: the app as .mpy files on stock MicroPython; frozen: the production
# image, the app frozen in, with the fast-boot settings (firmware/image/).
DEPLOYMENTS = ("stock", "frozen")
POWER_SOURCES = ("coin", "usb")
INDICATORS = ("haptic", "led")
FLASH_SIZES_MB = (1, 2, 4, 8, 16, 32)
# The states a profile must give a current for; "advertising" comes from
# [advertising_ua] at the board's TX power.
CURRENT_STATES = ("deep_sleep", "light_sleep", "boot", "cpu_active", "connected", "scanning")
PEAK_STATES = ("advertising", "scanning", "boot")
_MIN_SOURCE = 8  # characters: "ESTIMATE" at the least


class ProfileError(ValueError):
    """The board profile is missing, or has missing keys, ill-typed or impossible values."""


@dataclass(frozen=True)
class Board:
    name: str
    chip: str
    module: str
    description: str
    flash_mb: int
    deployment: str
    power: str
    wake_to_app: dict[str, int]  # deployment -> deep-sleep wake to the app's first line, ms
    button_pin: int
    button_active_low: bool
    button_pull: str
    indicator_kind: str
    indicator_pin: int
    indicator_active_high: bool
    chemistry: str
    nominal_mah: int
    battery_adc_pin: int
    divider_enable_pin: int
    r_top_ohm: int
    r_bottom_ohm: int
    settle_ms: int
    brownout_mv: int
    bulk_uf: float
    tx_dbm: int
    advertising_ua: dict[int, float]  # TX power in dBm -> current while advertising
    currents_ua: dict[str, float]  # state -> average current from the cell
    peak_ua: dict[str, float]  # state -> highest current during its pulses
    sources: dict[str, str]  # "section.key" -> where the number comes from

    @property
    def wake_to_app_ms(self) -> int:
        """Wake-to-app time of the deployment this Board stands for."""
        return self.wake_to_app[self.deployment]

    def for_deployment(self, deployment: str) -> Board:
        """The same board running another deployment; ProfileError if unknown."""
        if deployment not in self.wake_to_app:
            raise ProfileError(
                f"{self.name}: unknown deployment {deployment!r};"
                f" use one of {', '.join(self.wake_to_app)}"
            )
        return dataclasses.replace(self, deployment=deployment)

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


def board_names() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


def load_board(name: str = DEFAULT_BOARD, deployment: str | None = None) -> Board:
    """The board hardware/boards/<name>.toml describes, running `deployment`
    (the profile's default if None); ProfileError if there is none or it is
    invalid."""
    board = load_profile(profile_path(name))
    return board if deployment is None else board.for_deployment(deployment)


def load_profile(path: Path | str) -> Board:
    """Read and validate a board profile file; ProfileError names the file and every bad key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            profile = tomllib.load(f)
    except FileNotFoundError:
        known = ", ".join(board_names())
        raise ProfileError(f"{path}: no such board profile; known boards: {known}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # tomllib reads the bytes as UTF-8
        raise ProfileError(f"{path}: not valid TOML: byte {exc.start} is not UTF-8 text") from None
    except OSError as exc:  # a directory, no permission
        raise ProfileError(f"{path}: cannot read the board profile: {exc.strerror}") from None
    errors = _check_types(profile)
    if not errors:
        errors = _check_values(profile, path.stem)
    if errors:
        raise ProfileError(f"{path}: invalid board profile:\n  " + "\n  ".join(errors))
    return _board(profile)


def _board(profile: dict[str, Any]) -> Board:
    board, button, battery = profile["board"], profile["button"], profile["battery"]
    indicator, radio = profile["indicator"], profile["radio"]
    advertising = {int(dbm): float(v["value"]) for dbm, v in profile["advertising_ua"].items()}
    currents = {state: float(v["value"]) for state, v in profile["currents_ua"].items()}
    currents["advertising"] = advertising[radio["tx_dbm"]]
    sources = {
        f"{section}.{key}": value["source"]
        for section, table in profile.items()
        for key, value in table.items()
        if _is_sourced(value)
    }
    return Board(
        name=board["name"],
        chip=board["chip"],
        module=board["module"],
        description=board["description"],
        flash_mb=board["flash_mb"]["value"],
        deployment=board["deployment"],
        power=board["power"],
        wake_to_app={d: v["value"] for d, v in profile["wake_to_app_ms"].items()},
        button_pin=button["pin"],
        button_active_low=button["active_low"],
        button_pull=button["pull"],
        indicator_kind=indicator["kind"],
        indicator_pin=indicator["pin"],
        indicator_active_high=indicator["active_high"],
        chemistry=battery["chemistry"],
        nominal_mah=battery["nominal_mah"]["value"],
        battery_adc_pin=battery["adc_pin"],
        divider_enable_pin=battery["divider_enable_pin"],
        r_top_ohm=battery["r_top_ohm"],
        r_bottom_ohm=battery["r_bottom_ohm"],
        settle_ms=battery["settle_ms"],
        brownout_mv=battery["brownout_mv"]["value"],
        bulk_uf=float(battery["bulk_uf"]["value"]),
        tx_dbm=radio["tx_dbm"],
        advertising_ua=dict(sorted(advertising.items())),
        currents_ua=currents,
        peak_ua={state: float(v["value"]) for state, v in profile["peak_ua"].items()},
        sources=sources,
    )


# -- types -----------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_sourced(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"value", "source"}


_Check = tuple[str, Callable[[object], bool]]
_STRING: _Check = ("string", lambda v: isinstance(v, str))
_INTEGER: _Check = ("integer", _is_int)
_BOOLEAN: _Check = ("boolean", lambda v: isinstance(v, bool))


def _sourced(kind: str, ok: Callable[[object], bool]) -> _Check:
    """A number written with its source: { value = N, source = "..." }."""

    def check(v: object) -> bool:
        return (
            _is_sourced(v)
            and ok(v["value"])  # type: ignore[index]
            and isinstance(v["source"], str)  # type: ignore[index]
            and len(v["source"].strip()) >= _MIN_SOURCE  # type: ignore[index]
        )

    return (
        f'{{ value = <{kind}>, source = "<datasheet section, application note,'
        f' MEASURED: ... or ESTIMATE: ...>" }}',
        check,
    )


_SOURCED_INT = _sourced("integer", _is_int)
_SOURCED_NUMBER = _sourced("number", _is_number)

# section -> key -> check; "*" stands for any key (each with that check).
_SCHEMA: dict[str, dict[str, _Check]] = {
    "board": {
        "name": _STRING,
        "chip": _STRING,
        "module": _STRING,
        "description": _STRING,
        "flash_mb": _SOURCED_INT,
        "deployment": _STRING,
        "power": _STRING,
    },
    "wake_to_app_ms": {deployment: _SOURCED_INT for deployment in DEPLOYMENTS},
    "button": {"pin": _INTEGER, "active_low": _BOOLEAN, "pull": _STRING},
    "indicator": {"kind": _STRING, "pin": _INTEGER, "active_high": _BOOLEAN},
    "battery": {
        "chemistry": _STRING,
        "nominal_mah": _SOURCED_INT,
        "adc_pin": _INTEGER,
        "divider_enable_pin": _INTEGER,
        "r_top_ohm": _INTEGER,
        "r_bottom_ohm": _INTEGER,
        "settle_ms": _INTEGER,
        "brownout_mv": _SOURCED_INT,
        "bulk_uf": _SOURCED_NUMBER,
    },
    "radio": {"tx_dbm": _INTEGER},
    "currents_ua": {state: _SOURCED_NUMBER for state in CURRENT_STATES} | {"*": _SOURCED_NUMBER},
    "advertising_ua": {"*": _SOURCED_NUMBER},
    "peak_ua": {state: _SOURCED_NUMBER for state in PEAK_STATES},
}


def _check_types(profile: dict[str, Any]) -> list[str]:
    errors = [f"[{section}]: unknown table" for section in profile if section not in _SCHEMA]
    for section, keys in _SCHEMA.items():
        table = profile.get(section)
        if not isinstance(table, dict):
            errors.append(
                f"[{section}]: missing table" if table is None else f"[{section}]: must be a table"
            )
            continue
        for key, (type_name, ok) in keys.items():
            if key == "*":
                continue
            if key not in table:
                errors.append(f"[{section}] {key}: missing")
            elif not ok(table[key]):
                errors.append(f"[{section}] {key}: must be {type_name}, got {table[key]!r}")
        extra = keys.get("*")
        for key, value in table.items():
            if key in keys:
                continue
            if extra is None:  # most likely a typo of a known key
                errors.append(f"[{section}] {key}: unknown key")
            elif not extra[1](value):
                errors.append(f"[{section}] {key}: must be {extra[0]}, got {value!r}")
    return errors


# -- values ----------------------------------------------------------------


def _check_values(profile: dict[str, Any], stem: str) -> list[str]:
    board, battery = profile["board"], profile["battery"]
    errors = []
    if board["name"] != stem:
        errors.append(f"[board] name: {board['name']!r} must match the file name {stem!r}")
    for key, allowed in (
        ("deployment", DEPLOYMENTS),
        ("power", POWER_SOURCES),
    ):
        if board[key] not in allowed:
            errors.append(f"[board] {key}: must be one of {', '.join(allowed)}, got {board[key]!r}")
    if board["flash_mb"]["value"] not in FLASH_SIZES_MB:
        errors.append(
            f"[board] flash_mb: must be one of {', '.join(map(str, FLASH_SIZES_MB))},"
            f" got {board['flash_mb']['value']}"
        )
    errors += _check_wake(profile["wake_to_app_ms"])
    if profile["button"]["pull"] not in PULLS:
        errors.append(
            f"[button] pull: must be one of {', '.join(PULLS)}, got {profile['button']['pull']!r}"
        )
    if profile["indicator"]["kind"] not in INDICATORS:
        errors.append(
            f"[indicator] kind: must be one of {', '.join(INDICATORS)},"
            f" got {profile['indicator']['kind']!r}"
        )
    for key in ("nominal_mah", "r_top_ohm", "r_bottom_ohm", "brownout_mv"):
        value = battery[key]["value"] if isinstance(battery[key], dict) else battery[key]
        if value <= 0:
            errors.append(f"[battery] {key}: must be > 0")
    if battery["settle_ms"] < 0:
        errors.append("[battery] settle_ms: must be >= 0")
    if battery["bulk_uf"]["value"] < 0:
        errors.append("[battery] bulk_uf: must be >= 0")
    errors += _check_currents(profile)
    if board["power"] == "coin" and battery["brownout_mv"]["value"] >= _COIN_NOMINAL_MV:
        errors.append(
            f"[battery] brownout_mv: {battery['brownout_mv']['value']} mV is at or above a"
            f" coin cell's nominal {_COIN_NOMINAL_MV} mV: the unit could never run"
        )
    return errors + _check_pins(profile)


_COIN_NOMINAL_MV = 3000
_MAX_WAKE_MS = 5000
_TX_DBM_RANGE = range(-30, 26)


def _check_wake(wake: dict[str, Any]) -> list[str]:
    errors = []
    for deployment, entry in wake.items():
        if not 0 <= entry["value"] <= _MAX_WAKE_MS:
            errors.append(f"[wake_to_app_ms] {deployment}: must be 0..{_MAX_WAKE_MS} ms")
    if not errors and wake["frozen"]["value"] > wake["stock"]["value"]:
        errors.append(
            "[wake_to_app_ms] frozen: the production image cannot wake slower than stock"
            f" ({wake['frozen']['value']} > {wake['stock']['value']} ms)"
        )
    return errors


def _check_currents(profile: dict[str, Any]) -> list[str]:
    currents = {k: v["value"] for k, v in profile["currents_ua"].items()}
    peaks = {k: v["value"] for k, v in profile["peak_ua"].items()}
    errors = [
        f"[{section}] {key}: must be > 0"
        for section, table in (("currents_ua", currents), ("peak_ua", peaks))
        for key, value in table.items()
        if value <= 0
    ]
    advertising: dict[int, float] = {}
    for key, entry in profile["advertising_ua"].items():
        try:
            dbm = int(key)
        except ValueError:
            dbm = None
        if dbm is None or dbm not in _TX_DBM_RANGE:
            errors.append(f'[advertising_ua] "{key}": must be a TX power in dBm, -30..25')
        elif entry["value"] <= 0:
            errors.append(f'[advertising_ua] "{key}": must be > 0')
        else:
            advertising[dbm] = entry["value"]
    tx = profile["radio"]["tx_dbm"]
    if tx not in advertising and not errors:
        errors.append(f'[radio] tx_dbm: {tx} dBm has no current in [advertising_ua] (add "{tx}")')
    if errors:
        return errors
    powers = sorted(advertising)
    for low, high in itertools.pairwise(powers):
        if advertising[high] < advertising[low]:
            errors.append(
                f'[advertising_ua] "{high}": a higher TX power cannot draw less'
                f" ({advertising[high]} < {advertising[low]} at {low} dBm)"
            )
    # The order physics imposes: asleep < light sleep < CPU awake < radio on.
    order = [
        ("deep_sleep", currents["deep_sleep"]),
        ("light_sleep", currents["light_sleep"]),
        ("cpu_active", currents["cpu_active"]),
        ("advertising", advertising[tx]),
    ]
    for (lower, a), (higher, b) in itertools.pairwise(order):
        if not a < b:
            errors.append(f"[currents_ua] {lower}: {a} µA must be below {higher} ({b} µA)")
    for state in PEAK_STATES:
        average = advertising[tx] if state == "advertising" else currents[state]
        if peaks[state] < average:
            errors.append(
                f"[peak_ua] {state}: the peak ({peaks[state]} µA) cannot be below"
                f" the average ({average} µA)"
            )
    return errors


def _check_pins(profile: dict[str, Any]) -> list[str]:
    board, button, battery = profile["board"], profile["button"], profile["battery"]
    chip = CHIPS.get(board["chip"])
    if chip is None or not chip.has_boards:
        known = ", ".join(name for name, c in CHIPS.items() if c.has_boards)
        return [f"[board] chip: unknown chip {board['chip']!r}; known: {known}"]
    errors = []
    pins = {
        "[button] pin": button["pin"],
        "[indicator] pin": profile["indicator"]["pin"],
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
    for where in ("[battery] divider_enable_pin", "[indicator] pin"):
        if pins[where] in chip.input_only:
            errors.append(f"{where}: GPIO{pins[where]} is input-only")
    if len(set(pins.values())) != len(pins):
        errors.append(f"pins must be distinct: {', '.join(f'{k} = {v}' for k, v in pins.items())}")
    return errors


def _pin_list(pins: frozenset[int]) -> str:
    return ", ".join(str(p) for p in sorted(pins))
