"""Board profiles (hardware/boards/*.toml) as the host and the twin use them."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from typing import Any

from amrkit.paths import boards_dir

DEFAULT_BOARD = "esp32c3-coin"


@dataclass(frozen=True)
class Board:
    name: str
    chip: str
    wake_to_app_ms: int
    button_pin: int
    button_active_low: bool
    battery_adc_pin: int
    r_top_ohm: int
    r_bottom_ohm: int
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


def load_board(name: str = DEFAULT_BOARD) -> Board:
    path = boards_dir() / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in boards_dir().glob("*.toml")))
        raise ValueError(f"no board profile {path}; known boards: {known}")
    profile: dict[str, Any] = tomllib.loads(path.read_text())
    return Board(
        name=profile["board"]["name"],
        chip=profile["board"]["chip"],
        wake_to_app_ms=profile["board"]["wake_to_app_ms"],
        button_pin=profile["button"]["pin"],
        button_active_low=profile["button"]["active_low"],
        battery_adc_pin=profile["battery"]["adc_pin"],
        r_top_ohm=profile["battery"]["r_top_ohm"],
        r_bottom_ohm=profile["battery"]["r_bottom_ohm"],
        brownout_mv=profile["battery"]["brownout_mv"],
        currents_ua=dict(profile["currents_ua"]),
    )
