# SlotStore backend over the ESP-IDF NVS (esp32.NVS): slot i is the blob
# under key prefix + str(i) in one namespace.
import esp32

from amr.compat import const
from amr.records import NVS_NAMESPACE
from amr.store import MAX_RECORD, SlotStore

# esp32.NVS raises OSError(-esp_err) for NVS errors: a missing key is
# -ESP_ERR_NVS_NOT_FOUND, not ENOENT (MicroPython's esp32 tests show
# (-4354, 'ESP_ERR_NVS_NOT_FOUND')). ENOENT is accepted too, for emulations.
_NOT_FOUND = const(-0x1102)
_ENOENT = const(2)
_INVALID_LENGTH = const(-0x110C)  # blob larger than our buffer
_MAX_NAME = const(15)  # NVS namespace and key names


class NvsBackend:
    def __init__(self, namespace, prefix):
        if len(namespace) > _MAX_NAME or len(prefix) + 1 > _MAX_NAME:
            raise ValueError(f"NVS names are at most 15 characters: {namespace!r}, {prefix!r}")
        self._nvs = esp32.NVS(namespace)
        self._keys = (prefix + "0", prefix + "1")
        self._buf = bytearray(MAX_RECORD)  # allocated once, reused by every read

    def read(self, slot):
        """The slot's bytes, or None if nothing is stored under its key."""
        try:
            n = self._nvs.get_blob(self._keys[slot], self._buf)
        except OSError as e:
            code = e.args[0] if e.args else None
            if code in (_NOT_FOUND, _ENOENT):
                return None
            if code == _INVALID_LENGTH:
                return b""  # stored, but too big to be a record: a damaged slot
            raise
        return bytes(self._buf[:n])  # copy: the buffer is reused for the other slot

    def write(self, slot, data):
        self._nvs.set_blob(self._keys[slot], data)
        self._nvs.commit()  # NVS changes are not durable until committed

    def erase(self, slot):
        """Nothing stored under the slot's key afterwards."""
        try:
            self._nvs.erase_key(self._keys[slot])
        except OSError as e:
            if (e.args[0] if e.args else None) not in (_NOT_FOUND, _ENOENT):
                raise
            return  # already empty: nothing to commit
        self._nvs.commit()


def record_store(record):
    """The SlotStore of one of amr.records' records (PROVISION, STATE, BONDS)."""
    prefix, kind = record
    return SlotStore(NvsBackend(NVS_NAMESPACE, prefix), kind)
