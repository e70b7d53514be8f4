"""The board's numbers as the power model reads them (board profiles v2,
hardware/boards: currents per state, advertising current per TX power, peak
currents of the radio's pulses, the bulk capacitor, the brownout voltage,
each with its source), and the firmware's radio timings it needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from amrkit.boards import Board
from amrkit.paths import firmware_dir, firmware_module

# One advertising event: a packet on each of the 3 primary channels with the
# radio's ramp-up and the hops between them, ~3 ms (ESP32-C3 BLE controller).
ADV_EVENT_MS = 3.0
# The cell voltage at which the profile's currents (drawn from the cell
# through the boost converter) are given. ESTIMATE: the nominal 3.0 V of a
# CR2032; the converter draws constant power, so more current below it.
CURRENT_REF_MV = 3000.0


@dataclass(frozen=True)
class PowerSpec:
    name: str
    nominal_mah: float
    brownout_mv: float
    bulk_uf: float
    wake_to_app_ms: int
    currents_ua: dict[str, float]  # per state; "advertising" at tx_dbm
    advertising_ua: dict[int, float]  # dBm -> uA
    tx_dbm: int
    peak_ua: dict[str, float]
    sources: dict[str, str]  # "section.key" -> where the figure comes from

    def currents_at(self, tx_dbm: int | None) -> dict[str, float]:
        """The state currents with advertising at another TX power."""
        currents = dict(self.currents_ua)
        if tx_dbm is not None:
            currents["advertising"] = self.advertising_ua[tx_dbm]
        return currents


def power_spec(board: Board) -> PowerSpec:
    return PowerSpec(
        name=board.name,
        nominal_mah=float(board.nominal_mah),
        brownout_mv=float(board.brownout_mv),
        bulk_uf=float(board.bulk_uf),
        wake_to_app_ms=board.wake_to_app_ms,
        currents_ua={k: float(v) for k, v in board.currents_ua.items()},
        advertising_ua={int(k): float(v) for k, v in board.advertising_ua.items()},
        tx_dbm=board.tx_dbm,
        peak_ua={k: float(v) for k, v in board.peak_ua.items()},
        sources=dict(board.sources),
    )


@dataclass(frozen=True)
class RadioTiming:
    """The firmware's radio timings (firmware/amr/radio.py, alert.py, air.py,
    config.py, service_mode.py)."""

    adv_interval_ms: float
    scan_interval_ms: float
    scan_window_ms: float
    burst_ms: float
    retry_first_ms: float
    retry_advertise_ms: float
    heartbeat_advertise_ms: float
    service_max_ms: float
    cover_mean_retries: float


def _const(module: str, name: str) -> int:
    """A const() of a driver module, read from its source (drivers import
    the chip's modules, so they do not import under CPython)."""
    text = (firmware_dir() / "amr" / f"{module}.py").read_text()
    found = re.search(rf"^{name}\s*=\s*const\((\d+)\)", text, re.MULTILINE)
    if found is None:
        raise LookupError(f"firmware/amr/{module}.py has no {name} = const(...)")
    return int(found.group(1))


@cache
def radio_timing() -> RadioTiming:
    alert = firmware_module("alert")
    config = firmware_module("config")
    # A cover sequence's retries: a short one from _COVER_LENGTHS, or one in
    # COVER_TAIL_IN a tail, uniform over cover_tail's range.
    short = sum(alert._COVER_LENGTHS) / len(alert._COVER_LENGTHS)
    tail = sum(alert.cover_tail(config.DEFAULTS)) / 2
    one_in = alert.COVER_TAIL_IN
    return RadioTiming(
        adv_interval_ms=_const("radio", "_INTERVAL_US") / 1000,
        scan_interval_ms=_const("radio", "_SCAN_INTERVAL_US") / 1000,
        scan_window_ms=_const("radio", "_SCAN_WINDOW_US") / 1000,
        burst_ms=float(config.DEFAULTS["burst_ms"]),
        retry_first_ms=float(config.DEFAULTS["retry_first_s"] * 1000),
        retry_advertise_ms=float(alert.RETRY_ADVERTISE_MS),
        heartbeat_advertise_ms=float(_const("air", "_HEARTBEAT_ADVERTISE_MS")),
        service_max_ms=float(_const("service_mode", "_MAX_MS")),
        cover_mean_retries=short + (tail - short) / one_in,
    )
