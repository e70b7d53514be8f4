"""Factory image for a virtual unit: config, counter state and unit keys in
NVS, written with the firmware's own (CPython-importable) record code.

Twin units get their keys from a fixed, public twin registry secret, so a
receiver in a demo or test can verify them; it is not a production secret.
"""

from __future__ import annotations

import hashlib
from typing import Any

from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, derive_keys
from amrkit.twin.unit import VirtualUnit

TWIN_REGISTRY_SECRET = hashlib.sha256(b"AMR twin registry: public test secret").digest()


def twin_unit_id(unit: VirtualUnit) -> bytes:
    return hashlib.sha256(b"AMR twin unit " + unit.directory.name.encode()).digest()[:8]


def twin_keys(unit: VirtualUnit, heartbeat_s: int = 3600) -> KnownUnit:
    """What a receiver needs to know about a twin unit provisioned earlier."""
    unit_id = twin_unit_id(unit)
    return KnownUnit(unit_id.hex(), derive_keys(TWIN_REGISTRY_SECRET, unit_id), heartbeat_s)


def provision(unit: VirtualUnit, config: dict[str, Any] | None = None) -> KnownUnit:
    """Write a valid config, a fresh counter state and the unit's keys.

    Returns what a receiver needs to know about the unit.
    """
    cfg = firmware_module("config")
    state = firmware_module("state")
    store = firmware_module("store")
    config = config or cfg.DEFAULTS
    unit_id = twin_unit_id(unit)
    keys = derive_keys(TWIN_REGISTRY_SECRET, unit_id)
    records = firmware_module("records")
    blobs = {}
    for (prefix, kind), payload in (
        (records.CONFIG, cfg.encode_config(config)),
        (records.STATE, state.encode_state(state.State())),
        (records.KEYS, unit_id + keys.enc + keys.id + keys.ack),
    ):
        blobs[prefix + "0"] = store.pack_record(kind, 1, payload)  # slot 0, sequence 1
    unit.write_nvs(records.NVS_NAMESPACE, blobs)
    return KnownUnit(unit_id.hex(), keys, config["heartbeat_s"])
