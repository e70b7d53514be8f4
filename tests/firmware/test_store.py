# amr.store under the MicroPython unix port: record format, slot choice,
# corruption, torn writes, seq wrap.
import binascii
import struct

from membackend import MemBackend, PowerCut, cut_points

from amr.store import (
    MAX_PAYLOAD,
    OVERHEAD,
    WRITE_FAILED,
    SlotStore,
    StoreFault,
    newer,
    pack_record,
    unpack_record,
)

S = ord("S")
C = ord("C")


def fault_reason(fn, *args):
    """The reason of the StoreFault fn(*args) raises (fails if it does not)."""
    try:
        fn(*args)
    except StoreFault as e:
        assert str(e), "a StoreFault needs a message"
        return e.reason
    raise AssertionError(f"no StoreFault from {fn!r}")


def raw_record(magic=b"AR", version=1, kind=S, seq=1, length=None, payload=b"abc"):
    """A record with any header field wrong but a correct CRC."""
    if length is None:
        length = len(payload)
    body = struct.pack("<2sBBIH", magic, version, kind, seq, length) + payload
    return body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)


def expected_after_cut(backend, mode, old, new):
    """What load() must return after a cut save of `new` over `old`.

    The new payload only when the write completed, or when the torn bytes
    happen to equal the whole new record (an "erased" tail of 0xFF where
    the CRC ends in 0xFF); the old payload in every other case.
    """
    if mode == "after":
        return new
    for data in backend.slots:
        got = unpack_record(data or b"", S)
        if got is not None and got[1] == new:
            return new
    return old


def test_record_layout():
    rec = pack_record(S, 0x01020304, b"xyz")
    assert rec[:10] == b"AR\x01S\x04\x03\x02\x01\x03\x00"
    assert rec[10:13] == b"xyz"
    assert struct.unpack("<I", rec[13:])[0] == binascii.crc32(rec[:13]) & 0xFFFFFFFF
    assert len(rec) == OVERHEAD + 3
    assert rec == raw_record(seq=0x01020304, payload=b"xyz")
    assert unpack_record(rec, S) == (0x01020304, b"xyz")
    assert unpack_record(bytearray(rec), S) == (0x01020304, b"xyz")


def test_unpack_rejects_each_bad_field():
    assert unpack_record(raw_record(), S) == (1, b"abc")
    assert unpack_record(raw_record(magic=b"AQ"), S) is None
    assert unpack_record(raw_record(version=2), S) is None
    assert unpack_record(raw_record(kind=C), S) is None
    assert unpack_record(raw_record(length=2), S) is None
    assert unpack_record(raw_record(length=4), S) is None
    assert unpack_record(raw_record()[:-1], S) is None
    assert unpack_record(raw_record() + b"\x00", S) is None
    assert unpack_record(b"", S) is None
    assert unpack_record(b"AR", S) is None
    rec = bytearray(raw_record())
    rec[-1] ^= 0x80
    assert unpack_record(rec, S) is None


def test_empty_store_is_missing():
    store = SlotStore(MemBackend(), S)
    assert fault_reason(store.load) == "missing"
    assert store.damaged == 0


def test_save_before_load_starts_at_seq_1_in_slot_0():
    backend = MemBackend()
    store = SlotStore(backend, S)
    store.save(b"first")
    assert store.seq == 1
    assert backend.slots[1] is None
    assert unpack_record(backend.slots[0], S) == (1, b"first")
    again = SlotStore(backend, S)
    assert again.load() == b"first"
    assert again.seq == 1
    assert again.damaged == 0


def test_saves_alternate_slots_and_load_takes_newest():
    backend = MemBackend()
    store = SlotStore(backend, S)
    for i in range(1, 8):
        store.save(b"v" + str(i).encode())
        assert store.seq == i
        assert unpack_record(backend.slots[(i - 1) % 2], S) == (i, b"v" + str(i).encode())
        fresh = SlotStore(backend, S)
        assert fresh.load() == b"v" + str(i).encode()
        assert fresh.seq == i


def test_save_after_load_continues_the_sequence():
    backend = MemBackend()
    backend.slots[0] = pack_record(S, 41, b"old")
    backend.slots[1] = pack_record(S, 42, b"new")
    store = SlotStore(backend, S)
    assert store.load() == b"new"
    store.save(b"newer")
    assert unpack_record(backend.slots[0], S) == (43, b"newer")
    assert unpack_record(backend.slots[1], S) == (42, b"new")


def test_save_before_load_never_overwrites_existing_newest():
    # A store used without load() must still not shadow the newest record.
    backend = MemBackend()
    backend.slots[0] = pack_record(S, 500, b"newest")
    backend.slots[1] = pack_record(S, 499, b"older")
    store = SlotStore(backend, S)
    store.save(b"next")
    assert store.seq == 501
    assert unpack_record(backend.slots[0], S) == (500, b"newest")
    assert SlotStore(backend, S).load() == b"next"


def test_every_corrupted_byte_falls_back_to_other_slot():
    for slot in (0, 1):
        good = pack_record(S, 7, b"good copy")
        newest = pack_record(S, 8, b"newest copy")
        for offset in range(len(newest)):
            for mask in (0x01, 0x80, 0xFF):
                backend = MemBackend()
                backend.slots[1 - slot] = good
                backend.slots[slot] = newest
                backend.flip(slot, offset, mask)
                store = SlotStore(backend, S)
                assert store.load() == b"good copy", (slot, offset, mask)
                assert store.seq == 7
                assert store.damaged == 1
                store.save(b"repaired")  # goes over the damaged slot
                assert unpack_record(backend.slots[slot], S) == (8, b"repaired")
                assert SlotStore(backend, S).load() == b"repaired"


def test_both_slots_bad_is_corrupt():
    for bad in (b"", b"\xff" * 20, raw_record(version=9), raw_record(kind=C)):
        backend = MemBackend()
        backend.slots[0] = bad
        backend.slots[1] = raw_record(magic=b"XX")
        store = SlotStore(backend, S)
        assert fault_reason(store.load) == "corrupt"
        assert store.damaged == 2


def test_one_bad_slot_alone_is_corrupt():
    backend = MemBackend()
    backend.slots[1] = b"\x00" * 30
    store = SlotStore(backend, S)
    assert fault_reason(store.load) == "corrupt"
    assert store.damaged == 1
    store.save(b"provisioned")  # provisioning over a corrupt store works
    assert store.seq == 1
    assert SlotStore(backend, S).load() == b"provisioned"


def test_kinds_do_not_mix():
    backend = MemBackend()
    SlotStore(backend, C).save(b"config")
    store = SlotStore(backend, S)
    assert fault_reason(store.load) == "corrupt"
    assert SlotStore(backend, C).load() == b"config"


def test_damaged_counts_only_bad_slots():
    backend = MemBackend()
    store = SlotStore(backend, S)
    store.save(b"a")
    store.load()
    assert store.damaged == 0  # an empty slot is not damage
    store.save(b"b")
    store.load()
    assert store.damaged == 0
    backend.flip(0, 3)
    store.load()
    assert store.damaged == 1


def test_torn_save_at_every_byte_keeps_old_or_new():
    old, new = b"old payload", b"new payload, a bit longer"
    length = len(pack_record(S, 0, new))
    for mode, offset in cut_points(length):
        backend = MemBackend()
        store = SlotStore(backend, S)
        store.save(b"older")
        store.save(old)
        backend.arm(backend.writes, mode, offset)
        try:
            store.save(new)
        except PowerCut:
            pass
        else:
            raise AssertionError("cut not injected")
        rebooted = SlotStore(backend, S)
        got = rebooted.load()  # never raises: the old copy is intact
        assert got == expected_after_cut(backend, mode, old, new), (mode, offset, got)
        assert rebooted.seq == (3 if got == new else 2)
        rebooted.save(b"after reboot")
        assert SlotStore(backend, S).load() == b"after reboot"
        assert rebooted.seq == (4 if got == new else 3)


def test_torn_first_save_is_missing_or_corrupt_never_garbage():
    length = len(pack_record(S, 0, b"first"))
    for mode, offset in cut_points(length):
        backend = MemBackend()
        backend.arm(0, mode, offset)
        try:
            SlotStore(backend, S).save(b"first")
        except PowerCut:
            pass
        else:
            raise AssertionError("cut not injected")
        store = SlotStore(backend, S)
        if mode == "after":
            assert store.load() == b"first"
        else:
            reason = fault_reason(store.load)
            assert reason in ("missing", "corrupt"), reason


def test_failed_write_leaves_store_unchanged():
    class Failing(MemBackend):
        fail = False

        def write(self, slot, data):
            if self.fail:
                raise OSError(28)
            MemBackend.write(self, slot, data)

    backend = Failing()
    store = SlotStore(backend, S)
    store.save(b"one")
    backend.fail = True
    try:
        store.save(b"two")
    except StoreFault as fault:
        assert fault.reason == WRITE_FAILED  # the flash's refusal, named
        assert "flash write failed" in str(fault)
    else:
        raise AssertionError("write error swallowed")
    assert store.seq == 1
    backend.fail = False
    store.save(b"two")
    assert store.seq == 2
    assert backend.slots[1] is not None
    assert SlotStore(backend, S).load() == b"two"


def test_seq_wraps_with_serial_arithmetic():
    assert newer(1, 0)
    assert not newer(0, 1)
    assert not newer(5, 5)
    assert newer(0, 0xFFFFFFFF)
    assert not newer(0xFFFFFFFF, 0)
    assert newer(3, 0xFFFFFFFE)
    backend = MemBackend()
    backend.slots[0] = pack_record(S, 0xFFFFFFFE, b"a")
    backend.slots[1] = pack_record(S, 0xFFFFFFFD, b"z")
    store = SlotStore(backend, S)
    assert store.load() == b"a"
    expected = [0xFFFFFFFF, 0, 1, 2]
    for i, seq in enumerate(expected):
        store.save(b"p" + str(i).encode())
        assert store.seq == seq
        fresh = SlotStore(backend, S)
        assert fresh.load() == b"p" + str(i).encode()
        assert fresh.seq == seq


def test_torn_write_across_wrap():
    for mode, offset in cut_points(len(pack_record(S, 0, b"new"))):
        backend = MemBackend()
        backend.slots[0] = pack_record(S, 0xFFFFFFFF, b"old")
        backend.slots[1] = pack_record(S, 0xFFFFFFFE, b"older")
        store = SlotStore(backend, S)
        store.load()
        backend.arm(backend.writes, mode, offset)
        try:
            store.save(b"new")
        except PowerCut:
            pass
        else:
            raise AssertionError("cut not injected")
        got = SlotStore(backend, S).load()
        assert got == expected_after_cut(backend, mode, b"old", b"new"), (mode, offset)


def test_payload_limits():
    backend = MemBackend()
    store = SlotStore(backend, S)
    store.save(b"")
    assert SlotStore(backend, S).load() == b""
    store.save(b"x" * MAX_PAYLOAD)
    assert SlotStore(backend, S).load() == b"x" * MAX_PAYLOAD
    assert len(backend.slots[1]) == 256
    assert fault_reason(store.save, b"x" * (MAX_PAYLOAD + 1)) == "too large"
    assert SlotStore(backend, S).load() == b"x" * MAX_PAYLOAD


def test_fault_carries_reason_and_advice():
    try:
        SlotStore(MemBackend(), S).load()
    except StoreFault as e:
        assert e.reason == "missing"
        assert "provision" in str(e)
    else:
        raise AssertionError("no fault")
