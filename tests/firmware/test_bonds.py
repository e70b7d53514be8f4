# The bond table the BLE stack keeps its pairing secrets in (amr/bonds.py).
from membackend import MemBackend, PowerCut

from amr.bonds import Bonds, decode_bonds, encode_bonds
from amr.records import BONDS
from amr.store import MAX_PAYLOAD, SlotStore

PEER = 2


def store(backend=None):
    return SlotStore(backend or MemBackend(), BONDS[1])


def test_empty_store_has_no_bonds_and_is_not_damaged():
    bonds = Bonds(store())
    assert bonds.entries == []
    assert not bonds.damaged
    assert bonds.get(PEER, 0, None) is None


def test_secret_survives_a_reboot():
    backend = MemBackend()
    Bonds(store(backend)).set(PEER, b"host-a", b"\x01" * 33)
    again = Bonds(store(backend))
    assert again.get(PEER, 0, b"host-a") == b"\x01" * 33
    assert again.get(PEER, 0, None) == b"\x01" * 33  # by index, key None
    assert again.get(PEER, 1, None) is None
    assert again.get(1, 0, b"host-a") is None  # another secret type


def test_set_replaces_and_none_forgets():
    bonds = Bonds(store())
    bonds.set(PEER, b"a", b"old")
    bonds.set(PEER, b"a", b"new")
    assert [e[2] for e in bonds.entries] == [b"new"]
    assert bonds.set(PEER, b"a", None)
    assert bonds.get(PEER, 0, b"a") is None


def test_a_full_table_evicts_the_oldest_and_keeps_the_newest():
    bonds = Bonds(store())
    for i in range(10):
        assert bonds.set(PEER, b"host-%d" % i, bytes(40))
    assert len(encode_bonds(bonds.entries)) <= MAX_PAYLOAD
    assert bonds.get(PEER, 0, b"host-9") is not None
    assert bonds.get(PEER, 0, b"host-0") is None


def test_a_secret_too_big_to_keep_is_reported_and_changes_nothing():
    backend = MemBackend()
    bonds = Bonds(store(backend))
    bonds.set(PEER, b"a", b"kept")
    writes = backend.writes
    assert bonds.set(PEER, b"x", bytes(250)) is False
    assert bonds.get(PEER, 0, b"a") == b"kept" and backend.writes == writes


def test_forgetting_what_is_not_there_writes_nothing():
    backend = MemBackend()
    bonds = Bonds(store(backend))
    assert bonds.set(PEER, b"ghost", None) is True
    assert backend.writes == 0


def test_damaged_table_starts_empty_and_says_so():
    backend = MemBackend()
    s = store(backend)
    s.save(b"\x02\x05\x40abc")  # an entry cut short
    bonds = Bonds(store(backend))
    assert bonds.entries == [] and bonds.damaged


def test_power_cut_during_a_bond_write_keeps_the_previous_table():
    backend = MemBackend()
    Bonds(store(backend)).set(PEER, b"a", b"first")
    backend.arm(backend.writes, "trunc", 7)
    try:
        Bonds(store(backend)).set(PEER, b"b", b"second")
        raise AssertionError("the power cut did not happen")
    except PowerCut:
        pass
    bonds = Bonds(store(backend))
    assert bonds.get(PEER, 0, b"a") == b"first"
    assert bonds.get(PEER, 0, b"b") is None


def test_encoding_round_trips():
    entries = [(1, b"k1", b"v1"), (2, b"", b"\xff" * 20)]
    assert decode_bonds(encode_bonds(entries)) == entries


def test_hosts_are_peer_secrets_named_by_an_opaque_fingerprint():
    backend = MemBackend()
    bonds = Bonds(store(backend))
    bonds.set(PEER, b"host-a", b"\x01" * 33)
    bonds.set(1, b"host-a", b"\x02" * 33)  # another type: not a host of its own
    bonds.set(PEER, b"host-b", b"\x03" * 33)
    hosts = Bonds(store(backend)).hosts()
    assert len(hosts) == 2 and hosts[0] != hosts[1]
    for name in hosts:
        assert len(name) == 8 and int(name, 16) >= 0
        assert name not in (b"host-a".hex(), "01010101")  # neither key nor secret


def test_clear_forgets_every_bond_and_a_cut_leaves_all_or_none():
    for at in range(2):  # the two slot erases
        backend = MemBackend()
        Bonds(store(backend)).set(PEER, b"a", b"first")
        Bonds(store(backend)).set(PEER, b"b", b"second")
        backend.arm(backend.writes + at, "before")
        try:
            Bonds(store(backend)).clear()
            raise AssertionError("the power cut did not happen")
        except PowerCut:
            pass
        left = Bonds(store(backend))
        assert not left.damaged
        assert len(left.hosts()) in (0, 2)  # as it was, or empty: never an older table
        n = len(left.hosts())
        assert left.clear() == n and Bonds(store(backend)).hosts() == []
