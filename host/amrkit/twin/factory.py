"""Factory image for a virtual unit: its provisioning record (key generation,
unit id, keys and config) and a fresh counter state in NVS, written with the
firmware's own (CPython-importable) record code.

Twin units get their keys from a fixed, public twin registry secret, so a
receiver in a demo or test can verify them; it is not a production secret.
"""

from __future__ import annotations

import hashlib
from typing import Any

from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, UnitKeys, derive_keys
from amrkit.twin.unit import VirtualUnit

TWIN_REGISTRY_SECRET = hashlib.sha256(b"AMR twin registry: public test secret").digest()
FACTORY_GENERATION = 1  # the key generation a factory image carries


def twin_unit_id(unit: VirtualUnit) -> bytes:
    return hashlib.sha256(b"AMR twin unit " + unit.directory.name.encode()).digest()[:8]


def twin_keys(unit: VirtualUnit, heartbeat_s: int | None = None) -> KnownUnit:
    """What a receiver needs to know about a twin unit provisioned earlier
    (its heartbeat the firmware's default unless given)."""
    unit_id = twin_unit_id(unit)
    if heartbeat_s is None:
        heartbeat_s = firmware_module("config").DEFAULTS["heartbeat_s"]
    return KnownUnit(unit_id.hex(), derive_keys(TWIN_REGISTRY_SECRET, unit_id), heartbeat_s)


def provision(
    unit: VirtualUnit, config: dict[str, Any] | None = None, generation: int = FACTORY_GENERATION
) -> KnownUnit:
    """Write the provisioning record and a fresh counter state.

    Returns what a receiver needs to know about the unit.
    """
    cfg = firmware_module("config")
    state = firmware_module("state")
    store = firmware_module("store")
    prov = firmware_module("provisioning")
    records = firmware_module("records")
    config = config or cfg.DEFAULTS
    unit_id = twin_unit_id(unit)
    keys = derive_keys(TWIN_REGISTRY_SECRET, unit_id)
    blobs = {}
    for (prefix, kind), payload in (
        (
            records.PROVISION,
            prov.encode_provisioning(generation, key_record(unit_id, keys), config),
        ),
        (records.STATE, state.encode_state(state.State())),
    ):
        blobs[prefix + "0"] = store.pack_record(kind, 1, payload)  # slot 0, sequence 1
    unit.write_nvs(records.NVS_NAMESPACE, blobs)
    return KnownUnit(unit_id.hex(), keys, config["heartbeat_s"])


def key_record(unit_id: bytes, keys: UnitKeys) -> bytes:
    """The 56 bytes unit id | K_enc | K_id | K_ack of a provisioning record."""
    return unit_id + keys.enc + keys.id + keys.ack
