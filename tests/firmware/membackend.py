# In-memory SlotStore backend with power-cut injection (MicroPython and
# CPython). A cut is armed at a write number; that write then fails in one
# of these ways and raises PowerCut, which stands for the unit losing power:
#   "before"   nothing written
#   "after"    fully written (the cut hits before the caller sees success)
#   "trunc"    only the first `offset` bytes stored (a log-structured store
#              whose length field was written last)
#   "overlay"  first `offset` new bytes over the old ones (flash programmed
#              in place)
#   "erased"   first `offset` new bytes, the rest 0xFF (erased, not yet
#              programmed)


class PowerCut(Exception):
    pass


TORN = ("trunc", "overlay", "erased")


def cut_points(length):
    """Every (mode, offset) a write of `length` bytes can be cut at."""
    points = [("before", 0)]
    for mode in TORN:
        for offset in range(length):
            points.append((mode, offset))
    points.append(("after", 0))
    return points


class MemBackend:
    def __init__(self):
        self.slots = [None, None]
        self.writes = 0  # write attempts so far, including cut ones
        self.reads = 0
        self._cuts = {}  # write number -> (mode, offset)

    def arm(self, at, mode="before", offset=0):
        """Cut the power during write number `at` (counting from 0)."""
        self._cuts[at] = (mode, offset)

    @property
    def armed(self):
        return len(self._cuts)

    def read(self, slot):
        self.reads += 1
        data = self.slots[slot]
        return None if data is None else bytes(data)

    def write(self, slot, data):
        data = bytes(data)
        at = self.writes
        self.writes += 1
        cut = self._cuts.pop(at, None)
        if cut is None:
            self.slots[slot] = data
            return
        mode, offset = cut
        old = self.slots[slot] or b""
        if mode == "after":
            self.slots[slot] = data
        elif mode == "trunc":
            self.slots[slot] = data[:offset]
        elif mode == "overlay":
            self.slots[slot] = data[:offset] + old[offset:]
        elif mode == "erased":
            self.slots[slot] = data[:offset] + b"\xff" * (len(data) - offset)
        elif mode != "before":
            raise ValueError(f"unknown cut mode {mode!r}")
        raise PowerCut(f"power cut at write {at} ({mode}, offset {offset})")

    def erase(self, slot):
        """Erase a slot; an armed cut hits it like a write ("after": erased,
        any other mode: untouched, as an NVS erase is atomic)."""
        at = self.writes
        self.writes += 1
        cut = self._cuts.pop(at, None)
        if cut is None or cut[0] == "after":
            self.slots[slot] = None
        if cut is not None:
            raise PowerCut(f"power cut at erase {at} ({cut[0]})")

    def flip(self, slot, offset, mask=0x01):
        """Flip bits of one stored byte (bit rot, a stray write)."""
        data = bytearray(self.slots[slot])
        data[offset] ^= mask
        self.slots[slot] = bytes(data)
