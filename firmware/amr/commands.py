# The service commands: one table, the same on both links.
#   wired (the store's jig, a technician's cable), through the raw REPL:
#       import amr.commands; amr.commands.wired("info")
#       import amr.commands; amr.commands.wired("challenge", "<32 hex digits>")
#   which prints one JSON object;
#   BLE, in service mode: an authenticated host writes the command's name
#   (then a 0 byte and the argument's bytes, if it has one) to the control
#   point and gets the same JSON object back by notification (amr/gatt.py).
# A new command is one entry in COMMANDS and its handler. An entry's flags
# say whether it takes an argument (bytes) and whether it is WIRED only:
# provision, wipe, test_mode and service change what the unit is or opens
# it to the air, and must never run over the air (amr/contract.py lists
# them for the host). clear_bonds runs on both links: over the air only an
# authenticated host reaches it, one that holds the unit's keys and could
# pair again at will, so erasing the bonds takes nothing from anyone. Handlers take a
# Context and the argument (None for those that take none) and return a
# dict; none ever returns a key.
import json

from amr import battery, blecore, board, hw, records, rtcmem
from amr import diag as diagnostics
from amr.bonds import Bonds
from amr.compat import const
from amr.nvs import record_store
from amr.proof import NONCE_LENGTH, prove
from amr.provisioning import decode_provisioning
from amr.state import State, decode_state, encode_state
from amr.store import StoreFault
from amr.version import VERSION

WIRED = const(1)  # never over the air
ARG = const(2)  # takes an argument
_FORCE = const(1)  # provision's flags: go ahead despite pending alerts or a lost state
TEST_MODE_MAX_S = const(600)

# A reading under radio load listens (it sends nothing) for this long.
_LOAD_SCAN_MS = const(50)
_LOAD_SCAN_US = const(30000)


class Context:
    """What a command may touch: the chip, the diagnostics counters and how
    to keep them, whether the radio is already drawing its current, and (on
    the wired link) the app's record in RTC memory."""

    def __init__(self, chip, diag, keep, radio_on, rtc=None, bonds=None):
        self.chip = chip
        self.diag = diag
        self.keep = keep  # keep(diag): store these counters where they live (RTC memory)
        self.radio_on = radio_on
        self.rtc = rtc  # rtcmem.AppRecord that keep() stores beside the counters
        # The bond table the BLE stack uses now (service mode), else None: the
        # commands then read the one in flash. Clearing must go through the
        # live one, or the stack's next secret would write the old bonds back.
        self.bonds = bonds


def _bond_table(ctx):
    return ctx.bonds if ctx.bonds is not None else Bonds(record_store(records.BONDS))


def _record(record, decode=None):
    """(the decoded record, None), or (None, why it cannot be used)."""
    try:
        payload = record_store(record).load()
        return (decode(payload) if decode else payload), None
    except StoreFault as fault:
        return None, fault.reason


def _provisioning():
    """(Provisioning, None) or (None, why the unit has none it can use)."""
    prov, reason = _record(records.PROVISION, decode_provisioning)
    if reason == "missing":
        reason = "not provisioned"
    return prov, reason


def _config_and_keys(prov, reason):
    """What info and self_test say of the config and of the keys."""
    if prov is not None:
        return "ok", "ok"
    if reason.startswith("config"):
        return reason, "ok"
    return reason, reason


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


def _info(ctx, _arg):
    prov, reason = _provisioning()
    cfg_word, keys_word = _config_and_keys(prov, reason)
    state, state_reason = _record(records.STATE, decode_state)
    mv = _millivolts(ctx.chip)
    test_s = 0
    if ctx.rtc is not None and ctx.rtc.test_mode(ctx.chip.clock_ms()):
        test_s = (ctx.rtc.test_until - ctx.chip.clock_ms() + 999) // 1000
    return {
        "board": board.NAME,
        "chip": board.CHIP,
        "firmware": VERSION,
        "mac": ctx.chip.mac(),
        "provisioned": prov is not None,
        "unit_id": bytes(prov.unit_id).hex() if prov is not None else None,
        "key_generation": prov.generation if prov is not None else None,
        "battery_mv": mv,
        "battery_pct": battery.percent(mv),
        "button": "closed" if ctx.chip.pressed() else "open",
        "last_fault": _fault(ctx.diag),
        "config": cfg_word,
        "state": (
            {
                "counter_hwm": state.counter_hwm,
                "pending_alerts": len(state.pending) - len(state.tests),
                "pending_tests": len(state.tests),
            }
            if state is not None
            else state_reason
        ),
        "keys": "present" if keys_word == "ok" else keys_word,
        "bonds": len(_bond_table(ctx).hosts()),
        "test_mode_s": test_s,
        # The cell voltages this unit warns and stops retrying at (its config's).
        "low_battery_mv": prov.config["low_battery_mv"] if prov is not None else None,
        "battery_floor_mv": prov.config["battery_floor_mv"] if prov is not None else None,
    }


def _battery(ctx, _arg):
    mv = _millivolts(ctx.chip)
    loaded = _loaded_millivolts(ctx)
    return {
        "battery_mv": mv,
        "battery_pct": battery.percent(mv),
        "loaded_mv": loaded,
        "sag_mv": max(0, mv - loaded),
    }


def _diagnostics(ctx, _arg):
    return ctx.diag.as_dict()


def _self_test(ctx, _arg):
    checks = {}
    prov, reason = _provisioning()
    checks["config"], checks["keys"] = _config_and_keys(prov, reason)
    state, reason = _record(records.STATE, decode_state)
    checks["state"] = "ok" if state is not None else reason
    checks["button"] = "ok" if not ctx.chip.pressed() else "closed: stuck or held"
    loaded = _loaded_millivolts(ctx)
    if prov is None:
        checks["battery"] = "no config to judge it by"
    elif loaded < prov.config["battery_floor_mv"]:
        checks["battery"] = "%d mV under radio load, below the %d mV floor" % (
            loaded,
            prov.config["battery_floor_mv"],
        )
    else:
        checks["battery"] = "ok"
    ok = True
    for value in checks.values():
        ok = ok and value == "ok"
    return {"pass": ok, "checks": checks}


def _clear_diagnostics(ctx, _arg):
    ctx.diag = diagnostics.Diagnostics()
    ctx.keep(ctx.diag)
    return ctx.diag.as_dict()


def _error(text):
    return {"error": text}


def _provision(ctx, arg):
    """flags u8 | a provisioning record's payload (amr/provisioning.py),
    saved as one record: a power cut leaves the old provisioning or the new.
    The key generation must be above the unit's, unless it has none (blank,
    wiped). Refused while alerts are pending (they would be lost) or when the
    counter state is unreadable (counters could be reused), unless forced.
    The counter state is kept: counters run on across provisionings."""
    payload = bytes(arg[1:])
    force = arg and arg[0] & _FORCE
    try:
        new = decode_provisioning(payload)
    except StoreFault as fault:
        return _error("provisioning refused, the record is not valid: " + fault.reason)
    pstore = record_store(records.PROVISION)
    try:
        old = decode_provisioning(pstore.load())
    except StoreFault:
        old = None  # blank, wiped or damaged: any generation may come
    if old is not None and new.generation <= old.generation:
        return _error(
            "key generation %d is not above the unit's current %d: "
            "give the next generation" % (new.generation, old.generation)
        )
    sstore = record_store(records.STATE)
    try:
        state = decode_state(sstore.load())
    except StoreFault as fault:
        if fault.reason != "missing" and not force:
            return _error(
                "the counter state is unreadable (%s): provisioning would restart the "
                "counters at 0; force it only with a new unit id" % fault.reason
            )
        state = None
    if state is not None and state.pending and old is not None and not force:
        return _error(
            "%d alerts or test presses are pending, not yet acknowledged: provisioning "
            "would drop them; let the receiver acknowledge them, or force it" % len(state.pending)
        )
    # The counter state first: a cut after it leaves the old provisioning,
    # with its pending alerts dropped only if that was asked for.
    if state is None:
        state = State()
        sstore.save(encode_state(state))
    elif state.pending:
        state = State(state.counter_hwm)
        sstore.save(encode_state(state))
    pstore.save(payload)
    return {
        "provisioned": True,
        "unit_id": bytes(new.unit_id).hex(),
        "key_generation": new.generation,
        "counter_hwm": state.counter_hwm,
    }


def _wipe(ctx, _arg):
    """Keys and config (the provisioning record, both slots), bonds, pending
    alerts and test mode go; the counter state's high-water mark stays, so
    no counter is ever used twice. The provisioning goes first and in one
    step: a power cut leaves a unit still provisioned or wiped."""
    record_store(records.PROVISION).erase()
    sstore = record_store(records.STATE)
    hwm = None
    try:
        state = decode_state(sstore.load())
        hwm = state.counter_hwm
        if state.pending:
            sstore.save(encode_state(State(hwm)))
    except StoreFault:
        pass  # nothing to keep; a provisioning will say so
    record_store(records.BONDS).erase()
    if ctx.rtc is not None:
        ctx.rtc.test_until = 0
        ctx.keep(ctx.diag)
    return {"wiped": True, "counter_hwm": hwm}


def _challenge(ctx, arg):
    """A MAC over the host's nonce that proves the unit holds its keys
    (amr/proof.py); never a key."""
    if len(arg) != NONCE_LENGTH:
        return _error("challenge takes a %d-byte nonce, not %d bytes" % (NONCE_LENGTH, len(arg)))
    prov, reason = _provisioning()
    if prov is None:
        return _error("no keys: the unit has no usable provisioning (%s)" % reason)
    return {
        "unit_id": bytes(prov.unit_id).hex(),
        "key_generation": prov.generation,
        "mac": prove(prov.keys, prov.generation, arg).hex(),
    }


def _test_mode(ctx, arg):
    """Seconds (u16 little-endian, at most TEST_MODE_MAX_S; 0 ends it) during
    which an alarm gesture is a test press, never an alert. Kept in RTC
    memory: it survives deep sleep, not a power loss."""
    if len(arg) != 2:
        return _error("test_mode takes the seconds as a u16, not %d bytes" % len(arg))
    seconds = arg[0] | arg[1] << 8
    if seconds > TEST_MODE_MAX_S:
        return _error("test mode lasts at most %d s, not %d" % (TEST_MODE_MAX_S, seconds))
    if ctx.rtc is None:
        return _error("test_mode needs the wired link")
    now = ctx.chip.clock_ms()
    ctx.rtc.test_until = now + seconds * 1000 if seconds else 0
    ctx.keep(ctx.diag)
    return {"test_mode_s": seconds}


def _service(ctx, _arg):
    """Open service mode at the app's next run (the store's jig: no gesture
    needed). The wired link runs while the app is stopped, so this leaves
    a flag in the app's RTC record (amr/rtcmem.py) that the next run reads
    and clears at once: a timer wake, a press, or a reset. Refused without
    keys (the passkey comes from them) or with alerts on the air (they keep
    the radio; the app would refuse too)."""
    if ctx.rtc is None:
        return _error("service needs the wired link")
    prov, reason = _provisioning()
    if prov is None:
        return _error("no keys, so no passkey to pair with: %s; run amr provision" % reason)
    state, _reason = _record(records.STATE, decode_state)
    if state is not None and state.pending:
        return _error(
            "%d alerts or test presses are pending: the radio is theirs until the "
            "receiver acknowledges them; service mode waits" % len(state.pending)
        )
    ctx.rtc.flags |= rtcmem.SERVICE
    ctx.keep(ctx.diag)
    return {"service_mode": "opens at the next wake", "unit_id": bytes(prov.unit_id).hex()}


def _bonds(ctx, _arg):
    """The bonded hosts: how many, and a short opaque fingerprint each
    (amr/bonds.py); never a key or a secret."""
    table = _bond_table(ctx)
    hosts = table.hosts()
    return {"bonds": len(hosts), "hosts": hosts, "damaged": table.damaged}


def _clear_bonds(ctx, _arg):
    """Forget every bonded host (they pair again with the passkey). Both
    slots are erased, the older first: a power cut leaves the table as it
    was or empty."""
    cleared = _bond_table(ctx).clear()
    return {"bonds": 0, "cleared": cleared}


COMMANDS = {
    "info": (_info, 0),
    "battery": (_battery, 0),
    "diagnostics": (_diagnostics, 0),
    "self_test": (_self_test, 0),
    "clear_diagnostics": (_clear_diagnostics, 0),
    "challenge": (_challenge, ARG),
    "provision": (_provision, WIRED | ARG),
    "wipe": (_wipe, WIRED),
    "test_mode": (_test_mode, WIRED | ARG),
    "service": (_service, WIRED),
    "bonds": (_bonds, 0),
    "clear_bonds": (_clear_bonds, 0),
}


def run(name, ctx, arg=None, wired=False):
    """The command's reply; an unknown name, a wired-only command over the
    air or a missing or unexpected argument gets an error saying so."""
    entry = COMMANDS.get(name)
    if entry is None:
        known = sorted(COMMANDS)
        return _error("unknown command %r; known: %s" % (name, ", ".join(known)))
    handler, flags = entry
    if flags & WIRED and not wired:
        return _error(
            "%s runs over the wired link only (the store's jig), never over the air" % name
        )
    if flags & ARG and arg is None:
        return _error("%s needs an argument" % name)
    if not flags & ARG and arg is not None:
        return _error("%s takes no argument" % name)
    return handler(ctx, arg)


def wired_only():
    """The names the table marks WIRED: amr.contract.WIRED_ONLY, which the
    host reads, must list the same (tests/host/test_provisioning.py)."""
    return sorted(n for n in COMMANDS if COMMANDS[n][1] & WIRED)


def wired(name, arg_hex=None):
    """Run a command for the wired link: one JSON object on stdout. The
    argument, if any, comes as hex digits."""
    chip = hw.Chip()
    saved = rtcmem.unpack(chip.rtc_memory())
    rtc = rtcmem.decode_app(saved[1] if saved else b"")

    def keep(diag):
        chip.keep(rtcmem.pack(diag.encode(), rtc.encode()))

    ctx = Context(chip, diagnostics.load(saved[0] if saved else None), keep, False, rtc)
    arg = None
    if arg_hex is not None:
        try:
            arg = bytes.fromhex(arg_hex)
        except ValueError:
            print(json.dumps(_error("the argument of %s is not hex digits" % name)))
            return
    print(json.dumps(run(name, ctx, arg, True)))
