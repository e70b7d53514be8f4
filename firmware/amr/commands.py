# The service commands: one table, the same on both links.
#   wired (the store's jig, a technician's cable), through the raw REPL:
#       import amr.commands; amr.commands.wired("info")
#   which prints one JSON object;
#   BLE, in service mode: an authenticated host writes the command's name to
#   the control point and gets the same JSON object back by notification
#   (amr/gatt.py, amr/app.py).
# A new command is one entry in COMMANDS and its handler. Handlers take a
# Context and return a dict; none of them ever returns a key.
import json

from amr import battery, blecore, board, hw, records, rtcmem
from amr import diag as diagnostics
from amr.compat import const
from amr.config import decode_config
from amr.frame import KEYS_LENGTH
from amr.nvs import record_store
from amr.state import decode_state
from amr.store import StoreFault
from amr.version import VERSION

# A reading under radio load listens (it sends nothing) for this long.
_LOAD_SCAN_MS = const(50)
_LOAD_SCAN_US = const(30000)


class Context:
    """What a command may touch: the chip, the diagnostics counters and how
    to keep them, and whether the radio is already drawing its current."""

    def __init__(self, chip, diag, keep, radio_on):
        self.chip = chip
        self.diag = diag
        self.keep = keep  # keep(diag): store these counters where they live (RTC memory)
        self.radio_on = radio_on


def _record(record, decode=None):
    """(the decoded record, None), or (None, why it cannot be used)."""
    try:
        payload = record_store(record).load()
        return (decode(payload) if decode else payload), None
    except StoreFault as fault:
        return None, fault.reason


def _keys():
    keys, reason = _record(records.KEYS)
    if keys is not None and len(keys) != KEYS_LENGTH:
        return None, "keys length"
    return keys, reason


def _fault(diag):
    """The last fault recorded, in words, with the boot it happened in."""
    if not diag.last_error:
        return "none"
    name = diagnostics.FAULT_NAMES.get(diag.last_error, "code %d" % diag.last_error)
    return "%s (boot %d)" % (name, diag.last_error_boot)


def _millivolts(chip):
    return battery.millivolts(chip.battery_uv(), board.BATT_DIV_NUM, board.BATT_DIV_DEN)


def _loaded_millivolts(ctx):
    """The cell while the radio draws its current: a tired cell sags here
    first. Off the air, the radio listens for the reading, sending nothing."""
    if ctx.radio_on:
        return _millivolts(ctx.chip)
    ble = blecore.ble()
    ble.active(True)
    ble.gap_scan(_LOAD_SCAN_MS, _LOAD_SCAN_US, _LOAD_SCAN_US)
    try:
        return _millivolts(ctx.chip)
    finally:
        ble.gap_scan(None)  # type: ignore[arg-type]  # None stops (documented)
        ble.active(False)


def _info(ctx):
    keys, keys_reason = _keys()
    cfg, cfg_reason = _record(records.CONFIG, decode_config)
    state, state_reason = _record(records.STATE, decode_state)
    mv = _millivolts(ctx.chip)
    return {
        "board": board.NAME,
        "chip": board.CHIP,
        "firmware": VERSION,
        "unit_id": bytes(keys[:8]).hex() if keys is not None else None,
        "battery_mv": mv,
        "battery_pct": battery.percent(mv),
        "button": "closed" if ctx.chip.pressed() else "open",
        "last_fault": _fault(ctx.diag),
        "config": "ok" if cfg is not None else cfg_reason,
        "state": (
            {"counter_hwm": state.counter_hwm, "pending_alerts": len(state.pending)}
            if state is not None
            else state_reason
        ),
        "keys": "present" if keys is not None else keys_reason,
        # The cell voltages this unit warns and stops retrying at (its config's).
        "low_battery_mv": cfg["low_battery_mv"] if cfg is not None else None,
        "battery_floor_mv": cfg["battery_floor_mv"] if cfg is not None else None,
    }


def _battery(ctx):
    mv = _millivolts(ctx.chip)
    loaded = _loaded_millivolts(ctx)
    return {
        "battery_mv": mv,
        "battery_pct": battery.percent(mv),
        "loaded_mv": loaded,
        "sag_mv": max(0, mv - loaded),
    }


def _diagnostics(ctx):
    return ctx.diag.as_dict()


def _self_test(ctx):
    checks = {}
    cfg, reason = _record(records.CONFIG, decode_config)
    checks["config"] = "ok" if cfg is not None else reason
    state, reason = _record(records.STATE, decode_state)
    checks["state"] = "ok" if state is not None else reason
    keys, reason = _keys()
    checks["keys"] = "ok" if keys is not None else reason
    checks["button"] = "ok" if not ctx.chip.pressed() else "closed: stuck or held"
    loaded = _loaded_millivolts(ctx)
    if cfg is None:
        checks["battery"] = "no config to judge it by"
    elif loaded < cfg["battery_floor_mv"]:
        checks["battery"] = "%d mV under radio load, below the %d mV floor" % (
            loaded,
            cfg["battery_floor_mv"],
        )
    else:
        checks["battery"] = "ok"
    ok = True
    for value in checks.values():
        ok = ok and value == "ok"
    return {"pass": ok, "checks": checks}


def _clear_diagnostics(ctx):
    ctx.diag = diagnostics.Diagnostics()
    ctx.keep(ctx.diag)
    return ctx.diag.as_dict()


COMMANDS = {
    "info": _info,
    "battery": _battery,
    "diagnostics": _diagnostics,
    "self_test": _self_test,
    "clear_diagnostics": _clear_diagnostics,
}


def run(name, ctx):
    """The command's reply; an unknown name gets an error naming the known ones."""
    handler = COMMANDS.get(name)
    if handler is None:
        known = sorted(COMMANDS)
        return {"error": "unknown command %r; known: %s" % (name, ", ".join(known))}
    return handler(ctx)


def wired(name):
    """Run a command for the wired link: one JSON object on stdout."""
    chip = hw.Chip()
    saved = rtcmem.unpack(chip.rtc_memory())
    app_bytes = saved[1] if saved else b""

    def keep(diag):
        chip.keep(rtcmem.pack(diag.encode(), app_bytes))

    ctx = Context(chip, diagnostics.load(saved[0] if saved else None), keep, False)
    print(json.dumps(run(name, ctx)))
