# Pairing secrets of bonded hosts, kept for the BLE stack. MicroPython hands
# them to the app (_IRQ_SET_SECRET / _IRQ_GET_SECRET) as opaque
# (type, key, value) bytes; this table holds them in one record.
#
# Payload: entries, oldest first, each  type u8 | key length u8 |
# value length u8 | key | value. A record holds MAX_PAYLOAD bytes; a new
# secret that does not fit evicts the oldest, so the newest bond always
# survives. Bonds are disposable: a lost or damaged table only means the
# host pairs again with the passkey, so it is never a fault.
#
# A bonded host is a peer secret (SECRET_PEER) under its own key; hosts()
# names each by a short fingerprint, a hash of that key under a domain
# prefix: enough to tell hosts apart, nothing to pair or track with, and
# never a secret.
#
# Pure logic: the store is any object with load(), save(payload) and erase().
import hashlib

from amr.compat import const
from amr.contract import SECRET_PEER
from amr.store import MAX_PAYLOAD, StoreFault

_ENTRY_HEADER = const(3)
_FINGERPRINT = const(4)  # bytes of the hash shown: 8 hex digits


def fingerprint(key):
    """A bonded host's opaque short name (hex) from its secret's key."""
    return hashlib.sha256(b"AMR1BOND" + bytes(key)).digest()[:_FINGERPRINT].hex()


def decode_bonds(payload):
    """[(type, key, value)] from a record payload; ValueError if malformed."""
    entries = []
    i = 0
    n = len(payload)
    while i < n:
        if i + _ENTRY_HEADER > n:
            raise ValueError("bond entry header cut short")
        kind, klen, vlen = payload[i], payload[i + 1], payload[i + 2]
        i += _ENTRY_HEADER
        if i + klen + vlen > n:
            raise ValueError("bond entry cut short")
        entries.append(
            (kind, bytes(payload[i : i + klen]), bytes(payload[i + klen : i + klen + vlen]))
        )
        i += klen + vlen
    return entries


def encode_bonds(entries):
    out = bytearray()
    for kind, key, value in entries:
        if len(key) > 255 or len(value) > 255:
            raise ValueError("bond key and value are at most 255 bytes")
        out.append(kind)
        out.append(len(key))
        out.append(len(value))
        out += key
        out += value
    return bytes(out)


class Bonds:
    def __init__(self, store):
        self._store = store
        self.damaged = False  # the stored table could not be read (bonds start afresh)
        try:
            self.entries = decode_bonds(store.load())
        except StoreFault as fault:
            self.entries = []
            self.damaged = fault.reason != "missing"
        except ValueError:
            self.entries = []
            self.damaged = True

    def get(self, kind, index, key):
        """The value stored for (kind, key), or, when key is None, the
        index-th value of that kind; None if there is none."""
        if key is not None:
            key = bytes(key)
        n = 0
        for k, stored_key, value in self.entries:
            if k != kind:
                continue
            if key is None:
                if n == index:
                    return value
                n += 1
            elif stored_key == key:
                return value
        return None

    def set(self, kind, key, value):
        """Store (or, with value None, forget) a secret; persisted at once.
        False, with the table untouched, if it is too big to keep at all."""
        key = bytes(key)
        if value is not None:
            value = bytes(value)
            if _ENTRY_HEADER + len(key) + len(value) > MAX_PAYLOAD:
                return False
        entries = [e for e in self.entries if not (e[0] == kind and e[1] == key)]
        if value is None and len(entries) == len(self.entries):
            return True  # nothing to forget: no flash write
        if value is not None:
            entries.append((kind, key, value))
        size = 0
        for e in entries:
            size += _ENTRY_HEADER + len(e[1]) + len(e[2])
        while size > MAX_PAYLOAD:
            old = entries.pop(0)  # the oldest goes; the newest always fits
            size -= _ENTRY_HEADER + len(old[1]) + len(old[2])
        self.entries = entries
        self._store.save(encode_bonds(entries))
        return True

    def hosts(self):
        """The fingerprints of the bonded hosts, oldest first."""
        out = []
        for kind, key, _value in self.entries:
            if kind == SECRET_PEER:
                name = fingerprint(key)
                if name not in out:
                    out.append(name)
        return out

    def clear(self):
        """Forget every bond: both slots erased, the older first, so a power
        cut leaves the table as it was or empty, never an older one. The
        number of hosts that were bonded."""
        n = len(self.hosts())
        self._store.erase()
        self.entries = []
        self.damaged = False
        return n
