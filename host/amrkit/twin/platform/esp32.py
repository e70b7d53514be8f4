# Emulation of the parts of MicroPython's `esp32` module the firmware uses.
# NVS keeps the real semantics: set_* changes are lost unless commit() runs,
# and a commit is atomic. The supervisor can cut power at the Nth commit.
import json

import _twin
from _contract import (
    CUT_AFTER,
    CUT_AT_COMMIT,
    EXIT_POWER_CUT,
    NVS_BLOB,
    NVS_FILE,
    NVS_FULL,
    NVS_I32,
)

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def wake_on_gpio(pins, level):
    ids = [p._id for p in pins] if pins else []
    _twin.wake_gpio = [ids, level]


def _load():
    try:
        with open(_twin.DIR + "/" + NVS_FILE) as f:
            return json.load(f)
    except OSError:
        return {}


class NVS:
    def __init__(self, namespace):
        if not namespace or len(namespace) > 15:
            raise ValueError("namespace must be 1..15 characters")
        self._ns = namespace
        self._pending = {}

    def _get(self, key):
        value = self._pending[key] if key in self._pending else _load().get(self._ns, {}).get(key)
        if value is None:
            raise OSError(-0x1102)  # -ESP_ERR_NVS_NOT_FOUND, as the ESP32 port raises it
        return value

    def get_i32(self, key):
        return self._get(key)[NVS_I32]

    def set_i32(self, key, value):
        self._pending[key] = {NVS_I32: value}

    def get_blob(self, key, buffer):
        data = bytes.fromhex(self._get(key)[NVS_BLOB])
        if len(data) > len(buffer):
            raise OSError(-0x110C)  # -ESP_ERR_NVS_INVALID_LENGTH
        buffer[: len(data)] = data
        return len(data)

    def set_blob(self, key, value):
        if len(key) > 15:
            raise ValueError("key too long")
        if _twin.latest().get(NVS_FULL):
            raise OSError(-0x1105)  # -ESP_ERR_NVS_NOT_ENOUGH_SPACE: no free entries left
        self._pending[key] = {NVS_BLOB: bytes(value).hex()}

    def erase_key(self, key):
        self._get(key)
        self._pending[key] = None

    def commit(self):
        # Commits are numbered over the unit's life, across boots.
        _twin.commits += 1
        _twin.record("commit", n=_twin.commits)  # counted even if power goes mid-boot
        cut = _twin.UNIT.get(CUT_AT_COMMIT)
        if cut == _twin.commits and _twin.UNIT.get(CUT_AFTER):
            self._write()
        if cut == _twin.commits:
            _twin.record("power_cut", commit=cut)
            _twin.stop(EXIT_POWER_CUT)
        self._write()

    def _write(self):
        data = _load()
        space = data.setdefault(self._ns, {})
        for key, value in self._pending.items():
            if value is None:
                space.pop(key, None)
            else:
                space[key] = value
        self._pending = {}
        _twin.write_atomic(NVS_FILE, json.dumps(data))
