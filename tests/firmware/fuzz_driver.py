# Batch fuzz driver under the MicroPython unix port: one long-lived process
# takes one input a line on stdin, runs it against a firmware target and
# prints whatever the firmware printed, then one line
#     @@fuzz <verdict> <detail>
# verdict: "ok" (accepted), "fault" (refused with a StoreFault; detail is its
# reason), "done" (a command ran; the host judges its output), "silent" (a
# record decoded into something other than what it holds) or "crash" (any
# other exception; detail names it). Fields are hex, "-" for none, "=" for
# no bytes.
#
#   wired NAME ARG          amr.commands.wired(name, arg_hex), as the raw REPL runs it
#   gatt CONN HANDLE TRUSTED VALUE
#                           a host writes VALUE to a GATT handle (amr/gatt.py), the
#                           service session runs what reaches it (amr/service_mode.py)
#   nvs P0 P1 S0 S1 B0 B1   these bytes stored in the record slots, then info and self_test
#   config|provisioning|state PAYLOAD
#   store KIND SLOT0 SLOT1  amr.store.SlotStore.load() on these slot bytes
#
# Targets that touch the chip (wired, gatt, nvs) need a twin unit directory
# (amrkit.twin's DIR_ENV, REPL_ENV set, as the serial REPL runs); its NVS and
# RTC memory are put back as they were at start before each such input, so
# every input meets the same provisioned unit.
import json
import sys

MARK = "@@fuzz"
_unit = None  # the chip side, set up at the first input that needs it


def _unhex(field):
    if field == "-":
        return None
    return b"" if field == "=" else bytes.fromhex(field)


def _text(field):
    data = _unhex(field)
    return None if data is None else data.decode()


class _Unit:
    def __init__(self):
        import _twin
        from _contract import NVS_FILE, RTC_FILE

        self.files = {}
        for name in (NVS_FILE, RTC_FILE):
            path = _twin.DIR + "/" + name
            try:
                with open(path, "rb") as f:
                    self.files[path] = f.read()
            except OSError:
                self.files[path] = None
        self.nvs_path = _twin.DIR + "/" + NVS_FILE
        self._link = None

    def restore(self):
        import os

        for path, data in self.files.items():
            if data is None:
                try:  # noqa: SIM105 (the unix port has no contextlib)
                    os.remove(path)
                except OSError:
                    pass
            else:
                with open(path, "wb") as f:
                    f.write(data)

    def link(self):
        """A service session as service mode opens it, on the offline radio."""
        if self._link is None:
            from amr import diag, hw, records
            from amr.bonds import Bonds
            from amr.gatt import ServiceLink
            from amr.log import Log
            from amr.nvs import record_store
            from amr.service_mode import ServiceMode

            chip = hw.Chip()
            bonds = Bonds(record_store(records.BONDS))
            link = ServiceLink(bonds, ("AMR", "board", "0", "chip"))
            link.start(b"\x02\x01\x06", 123456, 50)
            sent = []

            def notify(conn, handle, data=None):
                sent.append((conn, handle, bytes(data or b"")))

            link._ble.gatts_notify = notify
            session = ServiceMode(chip, None, None, Log(chip, diag.Diagnostics()), lambda d: None)
            session._link = link
            session._bonds = bonds
            handles = [link._level]
            handles += [h for h in range(link._level + 1, link._control) if h in link._ble._values]
            handles.append(link._control)
            self._link = (link, session, sent, handles)
        return self._link


def _chip():
    global _unit
    if _unit is None:
        _unit = _Unit()
    _unit.restore()
    return _unit


def _wired(name, arg):
    from amr import commands

    _chip()
    commands.wired(_text(name), _text(arg))
    return "done", ""


def _gatt(conn, handle, trusted, value):
    from amr.contract import (
        IRQ_CENTRAL_CONNECT,
        IRQ_CENTRAL_DISCONNECT,
        IRQ_ENCRYPTION_UPDATE,
        IRQ_GATTS_WRITE,
    )

    link, session, sent, handles = _chip().link()
    conn = int(conn, 16) & 0xFFFF
    index = int(handle, 16)
    # An index within the table names one of the session's handles; past it, any handle.
    handle = handles[index] if index < len(handles) else index & 0xFFFF
    link._irq(IRQ_CENTRAL_CONNECT, (conn, 0, memoryview(bytes(6))))
    if trusted == "1":
        link._irq(IRQ_ENCRYPTION_UPDATE, (conn, 1, 1, 1, 16))
    # The stack stores what the host wrote, then tells the app.
    link._ble._values[handle] = _unhex(value) or b""
    link._irq(IRQ_GATTS_WRITE, (conn, handle))
    del sent[:]
    requests = len(link.requests)
    while link.notes:
        session._log.say("service: " + link.notes.pop(0))
    while link.requests:
        who, request = link.requests.pop(0)
        link.reply(who, session._command(request))
    link._irq(IRQ_CENTRAL_DISCONNECT, (conn, 0, memoryview(bytes(6))))
    link.notes = []
    link.refused = 0
    link.trusted.discard(conn)
    chunks = ",".join("%x:%x:%s" % (who, where, data.hex()) for who, where, data in sent)
    return "done", "%d %d %s" % (handle == link._control, requests, chunks or "-")


def _nvs(*slots):
    from _contract import NVS_BLOB

    from amr import commands, records

    unit = _chip()
    blobs = {}
    names = (records.PROVISION[0], records.STATE[0], records.BONDS[0])
    for i, slot in enumerate(slots):
        if slot != "-":
            blobs[names[i // 2] + str(i % 2)] = {NVS_BLOB: _unhex(slot).hex()}
    with open(unit.nvs_path, "w") as f:
        json.dump({records.NVS_NAMESPACE: blobs}, f)
    commands.wired("info")
    commands.wired("self_test")
    return "done", ""


def _decoded(payload, decode, encode, expected=None):
    """ok if the payload decodes into what encodes back to the expected bytes
    (the payload itself unless given)."""
    from amr.store import StoreFault

    try:
        value = decode(payload)
    except StoreFault as fault:
        return "fault", fault.reason
    again = encode(value)
    if again != (payload if expected is None else expected):
        return "silent", "decoded into a record that encodes as %s" % again.hex()
    return "ok", ""


def _config(payload):
    from amr.config import decode_config, encode_config

    return _decoded(_unhex(payload), decode_config, encode_config)


def _provisioning(payload):
    from amr.provisioning import decode_provisioning, encode_provisioning

    return _decoded(
        _unhex(payload),
        decode_provisioning,
        lambda p: encode_provisioning(p.generation, p.keys, p.config),
    )


def _state(payload):
    from amr.state import decode_state, encode_state

    data = _unhex(payload)
    # Version 1 (no test presses) is read as version 2 with none.
    expected = b"\x02" + data[1:] if data[:1] == b"\x01" else data
    return _decoded(data, decode_state, encode_state, expected)


class _Slots:
    def __init__(self, slots):
        self.slots = slots

    def read(self, slot):
        return self.slots[slot]

    def write(self, slot, data):
        self.slots[slot] = bytes(data)

    def erase(self, slot):
        self.slots[slot] = None


def _store(kind, slot0, slot1):
    from amr.store import SlotStore, StoreFault, newer, unpack_record

    kind = int(kind, 16)
    slots = [_unhex(slot0), _unhex(slot1)]
    valid = [unpack_record(s, kind) for s in slots if s is not None]
    valid = [r for r in valid if r is not None]
    try:
        payload = SlotStore(_Slots(slots), kind).load()
    except StoreFault as fault:
        if valid:
            return "silent", "a valid record was refused: " + fault.reason
        return "fault", fault.reason
    best = valid[0] if valid else None
    for record in valid[1:]:
        if newer(record[0], best[0]):
            best = record
    if best is None or payload != best[1]:
        return "silent", "load() gave a payload no slot holds as its newest valid record"
    return "ok", ""


TARGETS = {
    "wired": _wired,
    "gatt": _gatt,
    "nvs": _nvs,
    "config": _config,
    "provisioning": _provisioning,
    "state": _state,
    "store": _store,
}


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        fields = line.split()
        if not fields:
            continue
        try:
            verdict, detail = TARGETS[fields[0]](*fields[1:])
        except Exception as exc:  # the finding: report it, take the next input
            verdict, detail = "crash", "%s: %s" % (type(exc).__name__, exc)
        print(MARK, verdict, detail.replace("\n", " "))


main()
