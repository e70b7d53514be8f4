"""Factory image for a virtual unit: the config and state records in NVS,
written with the firmware's own (CPython-importable) record code."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from amrkit.paths import firmware_dir
from amrkit.twin.unit import VirtualUnit

NVS_NAMESPACE = "amr"
KIND_CONFIG = 0x43
KIND_STATE = 0x53


def firmware_module(name: str) -> ModuleType:
    """Import a pure firmware module (amr.<name>) under CPython."""
    path = str(firmware_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(f"amr.{name}")


def default_config() -> dict[str, int]:
    return dict(firmware_module("config").DEFAULTS)


def provision(unit: VirtualUnit, config: dict[str, Any] | None = None) -> None:
    """Write a valid config and a fresh counter state (slot 0 of each)."""
    cfg = firmware_module("config")
    state = firmware_module("state")
    store = firmware_module("store")
    unit.write_nvs(
        NVS_NAMESPACE,
        {
            "c0": store.pack_record(KIND_CONFIG, 1, cfg.encode_config(config or cfg.DEFAULTS)),
            "s0": store.pack_record(KIND_STATE, 1, state.encode_state(state.State())),
        },
    )
