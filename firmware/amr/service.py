# Service readout over the wired link (the store's jig, a technician's USB
# cable): run through the raw REPL as `import amr.service; amr.service.report()`.
# Prints one JSON object: board, unit id, battery, diagnostics, and whether
# config, counter state and keys are sound. Never prints a key.
import json

from amr import battery, board, hw, records, rtcmem
from amr import diag as diagnostics
from amr.config import decode_config
from amr.frame import KEYS_LENGTH
from amr.nvs import record_store
from amr.state import decode_state
from amr.store import StoreFault


def _record(record, decode=None):
    """(the decoded record, None), or (None, why it cannot be used)."""
    try:
        payload = record_store(record).load()
        return (decode(payload) if decode else payload), None
    except StoreFault as fault:
        return None, fault.reason


def _fault(diag):
    """The last fault recorded, in words, with the boot it happened in."""
    if not diag.last_error:
        return "none"
    name = diagnostics.FAULT_NAMES.get(diag.last_error, "code %d" % diag.last_error)
    return "%s (boot %d)" % (name, diag.last_error_boot)


def readout():
    chip = hw.Chip()
    saved = rtcmem.unpack(chip.rtc_memory())
    diag = diagnostics.load(saved[0] if saved else None)
    mv = battery.millivolts(chip.battery_uv(), board.BATT_DIV_NUM, board.BATT_DIV_DEN)
    out = {
        "board": board.NAME,
        "chip": board.CHIP,
        "battery_mv": mv,
        "battery_pct": battery.percent(mv),
        "button": "closed" if chip.pressed() else "open",
        "last_fault": _fault(diag),
        "diagnostics": diag.as_dict(),
    }
    cfg, reason = _record(records.CONFIG, decode_config)
    out["config"] = "ok" if cfg is not None else reason
    state, reason = _record(records.STATE, decode_state)
    out["state"] = (
        {"counter_hwm": state.counter_hwm, "pending_alerts": len(state.pending)}
        if state is not None
        else reason
    )
    keys, reason = _record(records.KEYS)
    if keys is not None and len(keys) != KEYS_LENGTH:
        keys, reason = None, "keys length"
    out["keys"] = "present" if keys is not None else reason
    out["unit_id"] = bytes(keys[:8]).hex() if keys is not None else None
    return out


def report():
    print(json.dumps(readout()))
