# amr.provisioning, amr.proof and SlotStore.erase under the MicroPython unix
# port: the one provisioning record, the proof of keys against the shared
# vectors (which the host's cryptography reproduces), and a wipe's erase
# order under power cuts.
import json

from membackend import MemBackend, PowerCut

from amr.config import CONFIG_SIZE, DEFAULTS
from amr.proof import cmac, proof_key, prove
from amr.provisioning import PROVISION_SIZE, decode_provisioning, encode_provisioning
from amr.store import SlotStore, StoreFault

P = 0x50
KEYS = bytes(range(56))


def vectors():
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/frames.json") as f:
        return json.load(f)


def unit_keys(unit):
    k = unit["keys"]
    return bytes.fromhex(unit["unit_id"] + k["enc"] + k["id"] + k["ack"])


def fault_reason(fn, *args):
    try:
        fn(*args)
    except StoreFault as e:
        return e.reason
    raise AssertionError("no StoreFault")


def test_cmac_matches_rfc_4493():
    for v in vectors()["cmac"]:
        assert cmac(bytes.fromhex(v["key"]), bytes.fromhex(v["message"])).hex() == v["mac"]


def test_proof_of_keys_matches_the_vectors():
    n = 0
    for unit in vectors()["units"]:
        keys = unit_keys(unit)
        assert proof_key(keys).hex() == unit["proof"]["key"]
        for c in unit["proof"]["challenges"]:
            assert prove(keys, c["generation"], bytes.fromhex(c["nonce"])).hex() == c["mac"]
            n += 1
    assert n >= 6


def test_proof_depends_on_every_key_the_generation_and_the_nonce():
    base = prove(KEYS, 1, bytes(16))
    for at in (0, 8, 24, 40):  # unit id, K_enc, K_id, K_ack
        other = bytearray(KEYS)
        other[at] ^= 1
        assert prove(bytes(other), 1, bytes(16)) != base
    assert prove(KEYS, 2, bytes(16)) != base
    assert prove(KEYS, 1, b"\x01" + bytes(15)) != base
    try:
        prove(KEYS, 1, bytes(15))
    except ValueError:
        pass
    else:
        raise AssertionError("a short nonce was taken")


def test_provisioning_round_trip_and_layout():
    payload = encode_provisioning(7, KEYS, DEFAULTS)
    assert len(payload) == PROVISION_SIZE == 61 + CONFIG_SIZE
    assert payload[0] == 1 and payload[1:5] == b"\x07\x00\x00\x00"
    assert payload[5:61] == KEYS
    prov = decode_provisioning(payload)
    assert prov.generation == 7 and prov.keys == KEYS and prov.unit_id == KEYS[:8]
    assert prov.config == DEFAULTS


def test_a_bad_provisioning_is_named():
    good = encode_provisioning(1, KEYS, DEFAULTS)
    assert "length" in fault_reason(decode_provisioning, good[:-1])
    assert "version 2" in fault_reason(decode_provisioning, b"\x02" + good[1:])
    bad_config = bytearray(good)
    bad_config[61] = 9  # the config's own version byte
    assert fault_reason(decode_provisioning, bytes(bad_config)).startswith("config")
    assert "keys length" in fault_reason(encode_provisioning, 1, KEYS[:40], DEFAULTS)
    cfg = dict(DEFAULTS)
    cfg["hold_ms"] = 1
    assert fault_reason(encode_provisioning, 1, KEYS, cfg).startswith("config field hold_ms")


def test_erase_takes_the_older_slot_first_at_any_cut():
    # Two provisionings in the store: a cut between the erases leaves the
    # newest, never the older one brought back.
    for cut in (0, 1):
        for mode in ("before", "after"):
            backend = MemBackend()
            store = SlotStore(backend, P)
            store.save(b"old")
            store.save(b"new")
            backend.arm(backend.writes + cut, mode)
            try:
                store.erase()
                cut_hit = False
            except PowerCut:
                cut_hit = True
            assert cut_hit
            left = SlotStore(backend, P)
            try:
                payload = left.load()
            except StoreFault as fault:
                assert fault.reason == "missing"
                assert (cut, mode) == (1, "after")
            else:
                assert payload == b"new", (cut, mode, payload)
    backend = MemBackend()
    store = SlotStore(backend, P)
    store.save(b"x")
    store.erase()
    assert backend.slots == [None, None]
    store.erase()  # nothing left: no error
    store.save(b"y")
    assert SlotStore(backend, P).load() == b"y"
