# Emulation of the parts of MicroPython's `esp32` module the firmware uses.
# NVS keeps the real semantics: set_* changes are lost unless commit() runs,
# and a commit is atomic. The supervisor can cut power at the Nth commit.
import json

import _twin

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True

_NVS_FILE = "nvs.json"


def wake_on_gpio(pins, level):
    ids = [p._id for p in pins] if pins else []
    _twin.UNIT["_gpio_wake"] = [ids, level]


def _load():
    try:
        with open(_twin.DIR + "/" + _NVS_FILE) as f:
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
        return self._get(key)["i32"]

    def set_i32(self, key, value):
        self._pending[key] = {"i32": value}

    def get_blob(self, key, buffer):
        data = bytes.fromhex(self._get(key)["blob"])
        if len(data) > len(buffer):
            raise OSError(-0x110C)  # -ESP_ERR_NVS_INVALID_LENGTH
        buffer[: len(data)] = data
        return len(data)

    def set_blob(self, key, value):
        if len(key) > 15:
            raise ValueError("key too long")
        self._pending[key] = {"blob": bytes(value).hex()}

    def erase_key(self, key):
        self._get(key)
        self._pending[key] = None

    def commit(self):
        # Commits are numbered over the unit's life, across boots.
        _twin.commits += 1
        _twin.record("commit", n=_twin.commits)  # counted even if power goes mid-boot
        cut = _twin.UNIT.get("cut_at_commit")
        if cut == _twin.commits and _twin.UNIT.get("cut_after"):
            self._write()
        if cut == _twin.commits:
            _twin.record("power_cut", commit=cut)
            _twin.stop(_twin.EXIT_POWER_CUT)
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
        _twin.write_atomic(_NVS_FILE, json.dumps(data))
