# The firmware frame codec against the shared vectors the host codec wrote
# (tests/vectors/frames.json): any byte of difference fails.
import json

from amr.frame import AD_LENGTH, Sealer, service_ad


def vectors():
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/frames.json") as f:
        return json.load(f)


def sealer(unit):
    keys = unit["keys"]
    return Sealer(bytes.fromhex(unit["unit_id"] + keys["enc"] + keys["id"] + keys["ack"]))


def test_every_vector_frame_is_reproduced_byte_for_byte():
    n = 0
    for unit in vectors()["units"]:
        s = sealer(unit)
        for f in unit["frames"]:
            ad = s.seal(
                f["kind"],
                f["counter"],
                f["alert_id"],
                f["attempt"],
                f["battery_pct"],
                f["flags"],
                f["clock_s"],
            )
            assert len(ad) == AD_LENGTH
            assert ad.hex() == f["ad"], (unit["unit_id"], f["counter"])
            assert s.rid(f["counter"]).hex() == f["rid"]
            n += 1
    assert n >= 10


def test_ack_tags_match():
    for unit in vectors()["units"]:
        s = sealer(unit)
        for a in unit["acks"]:
            assert s.ack_tag(a["alert_id"]).hex() == a["tag"]


def test_service_mode_passkey_and_advertising_match():
    for unit in vectors()["units"]:
        s = sealer(unit)
        passkeys = set()
        for v in unit["service"]:
            ad = service_ad(v["nonce"], s.service_token(v["nonce"]))
            assert ad.hex() == v["ad"]
            assert len(ad) <= 31
            assert s.passkey(v["nonce"]) == v["passkey"]
            assert 0 <= v["passkey"] < 1000000
            passkeys.add(v["passkey"])
        assert len(passkeys) == 3  # a new passkey each session


def test_wrong_key_length_is_refused():
    try:
        Sealer(bytes(40))
    except ValueError as e:
        assert "56" in str(e)
    else:
        raise AssertionError("short key material accepted")
