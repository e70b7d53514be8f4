"""Write the bad-input corpus: one file a case, for `amr listen` to refuse
with a message and its exit code (never a traceback).

    python tests/corpus/make_corpus.py

bundle/   receiver bundles, read by `amr listen --bundle F`
capture/  captures, read by `amr listen --capture F` (with bundle/good.bundle)

Each directory's expected.json maps every file to the exit code `amr
listen` must end with (0 for the good ones), and gives what the run needs
(the passphrase, the bundle). tests/host/test_bad_input_cli.py replays
them; a fuzzer may mutate them. The files are deterministic: the same
script writes the same bytes (fixed salt and nonce).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from amrkit.bundle import _AAD, FORMAT, VERSION, _key
from amrkit.protocol import Frame, Kind, derive_keys, encode

HERE = Path(__file__).parent
PASSPHRASE = "corpus passphrase"
UNIT_ID = bytes.fromhex("00c0ffee00c0ffee")
SECRET = b"corpus registry secret, not a real one"
KEYS = derive_keys(SECRET, UNIT_ID)
SALT = bytes(range(16))
NONCE = bytes(range(12))
N = 2**15

OK, BAD_BUNDLE, INPUT = 0, 3, 5  # amr listen's exit codes

GOOD_UNITS: dict[str, Any] = {
    "units": [
        {
            "unit": UNIT_ID.hex(),
            "enc": KEYS.enc.hex(),
            "id": KEYS.id.hex(),
            "ack": KEYS.ack.hex(),
            "heartbeat_s": 3600,
        }
    ]
}


def sealed(body: bytes, n: int = N) -> dict[str, Any]:
    """A bundle document sealing `body` as write_bundle does, deterministically."""
    key = _key(PASSPHRASE, SALT, n)
    return {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {"name": "scrypt", "salt": SALT.hex(), "n": n, "r": 8, "p": 1},
        "nonce": NONCE.hex(),
        "ciphertext": base64.b64encode(AESGCM(key).encrypt(NONCE, body, _AAD)).decode(),
    }


def dumps(document: Any) -> str:
    return json.dumps(document, indent=1) + "\n"


def edited(path: list[str], value: Any, *, drop: bool = False) -> str:
    """The good bundle with one field changed (or dropped), as text."""
    document = sealed(json.dumps(GOOD_UNITS).encode())
    table = document
    for name in path[:-1]:
        table = table[name]
    if drop:
        del table[path[-1]]
    else:
        table[path[-1]] = value
    return dumps(document)


def raw_value(path: list[str], literal: str) -> str:
    """The good bundle with one field's value replaced by a JSON literal as
    written (NaN, 1e400, a number of 5000 digits): what json.dumps cannot make."""
    return edited(path, "@@RAW@@").replace('"@@RAW@@"', literal)


def sealed_units(units: Any) -> str:
    return dumps(sealed(json.dumps(units).encode()))


GOOD_UNIT = GOOD_UNITS["units"][0]


def unit_with(**change: Any) -> dict[str, Any]:
    return {"units": [{**GOOD_UNIT, **change}]}


def bundles() -> dict[str, tuple[bytes | str, int]]:
    good = dumps(sealed(json.dumps(GOOD_UNITS).encode()))
    altered = json.loads(good)
    blob = bytearray(base64.b64decode(altered["ciphertext"]))
    blob[0] ^= 1
    altered["ciphertext"] = base64.b64encode(bytes(blob)).decode()
    return {
        "good.bundle": (good, OK),
        "empty.bundle": ("", BAD_BUNDLE),
        "not-json.bundle": ("this is not a bundle\n", BAD_BUNDLE),
        "binary.bundle": (bytes(range(256)) * 4, BAD_BUNDLE),
        "json-array.bundle": ("[1, 2, 3]\n", BAD_BUNDLE),
        "json-string.bundle": ('"amr-receiver-bundle"\n', BAD_BUNDLE),
        "json-null.bundle": ("null\n", BAD_BUNDLE),
        "json-nested-deep.bundle": ("[" * 20_000 + "]" * 20_000 + "\n", BAD_BUNDLE),
        "json-huge-number.bundle": ('{"format": 1' + "0" * 5000 + "}\n", BAD_BUNDLE),
        "format-wrong.bundle": (edited(["format"], "amr-registry"), BAD_BUNDLE),
        "format-missing.bundle": (edited(["format"], None, drop=True), BAD_BUNDLE),
        "version-2.bundle": (edited(["version"], 2), BAD_BUNDLE),
        "version-string.bundle": (edited(["version"], "1"), BAD_BUNDLE),
        "version-infinite.bundle": (raw_value(["version"], "1e400"), BAD_BUNDLE),
        "kdf-missing.bundle": (edited(["kdf"], None, drop=True), BAD_BUNDLE),
        "kdf-list.bundle": (edited(["kdf"], [1, 2]), BAD_BUNDLE),
        "kdf-not-scrypt.bundle": (edited(["kdf", "name"], "pbkdf2"), BAD_BUNDLE),
        "salt-missing.bundle": (edited(["kdf", "salt"], None, drop=True), BAD_BUNDLE),
        "salt-not-hex.bundle": (edited(["kdf", "salt"], "zz" * 16), BAD_BUNDLE),
        "salt-too-short.bundle": (edited(["kdf", "salt"], "00"), BAD_BUNDLE),
        "salt-number.bundle": (edited(["kdf", "salt"], 12345), BAD_BUNDLE),
        "scrypt-n-huge.bundle": (edited(["kdf", "n"], 2**40), BAD_BUNDLE),
        "scrypt-n-2-to-16.bundle": (edited(["kdf", "n"], 2**16), BAD_BUNDLE),
        "scrypt-n-not-power-of-two.bundle": (edited(["kdf", "n"], 1000), BAD_BUNDLE),
        "scrypt-n-one.bundle": (edited(["kdf", "n"], 1), BAD_BUNDLE),
        "scrypt-n-zero.bundle": (edited(["kdf", "n"], 0), BAD_BUNDLE),
        "scrypt-n-negative.bundle": (edited(["kdf", "n"], -32768), BAD_BUNDLE),
        "scrypt-n-float.bundle": (edited(["kdf", "n"], 32768.0), BAD_BUNDLE),
        "scrypt-n-string.bundle": (edited(["kdf", "n"], "32768"), BAD_BUNDLE),
        "scrypt-n-bool.bundle": (edited(["kdf", "n"], True), BAD_BUNDLE),
        "scrypt-n-null.bundle": (edited(["kdf", "n"], None), BAD_BUNDLE),
        "scrypt-n-infinite.bundle": (raw_value(["kdf", "n"], "1e400"), BAD_BUNDLE),
        "scrypt-n-nan.bundle": (raw_value(["kdf", "n"], "NaN"), BAD_BUNDLE),
        "scrypt-n-5000-digits.bundle": (raw_value(["kdf", "n"], "1" + "0" * 4999), BAD_BUNDLE),
        "scrypt-n-missing.bundle": (edited(["kdf", "n"], None, drop=True), BAD_BUNDLE),
        "scrypt-r-zero.bundle": (edited(["kdf", "r"], 0), BAD_BUNDLE),
        "scrypt-r-huge.bundle": (edited(["kdf", "r"], 2**30), BAD_BUNDLE),
        "scrypt-p-zero.bundle": (edited(["kdf", "p"], 0), BAD_BUNDLE),
        "scrypt-p-huge.bundle": (edited(["kdf", "p"], 2**30), BAD_BUNDLE),
        "nonce-missing.bundle": (edited(["nonce"], None, drop=True), BAD_BUNDLE),
        "nonce-not-hex.bundle": (edited(["nonce"], "not hex at all"), BAD_BUNDLE),
        "nonce-odd-digits.bundle": (edited(["nonce"], "000"), BAD_BUNDLE),
        "nonce-wrong-length.bundle": (edited(["nonce"], "00" * 16), BAD_BUNDLE),
        "ciphertext-missing.bundle": (edited(["ciphertext"], None, drop=True), BAD_BUNDLE),
        "ciphertext-not-base64.bundle": (edited(["ciphertext"], "!!!not base64"), BAD_BUNDLE),
        "ciphertext-bad-padding.bundle": (edited(["ciphertext"], "AAAAA"), BAD_BUNDLE),
        "ciphertext-too-short.bundle": (edited(["ciphertext"], "AAAA"), BAD_BUNDLE),
        "ciphertext-list.bundle": (edited(["ciphertext"], ["AAAA"]), BAD_BUNDLE),
        "ciphertext-altered.bundle": (dumps(altered), BAD_BUNDLE),
        "sealed-not-json.bundle": (dumps(sealed(b"not json")), BAD_BUNDLE),
        "sealed-nested-deep.bundle": (dumps(sealed(b"[" * 20_000)), BAD_BUNDLE),
        "sealed-list.bundle": (sealed_units([1, 2]), BAD_BUNDLE),
        "sealed-units-missing.bundle": (sealed_units({}), BAD_BUNDLE),
        "sealed-units-not-list.bundle": (sealed_units({"units": {"a": 1}}), BAD_BUNDLE),
        "sealed-unit-not-object.bundle": (sealed_units({"units": ["unit"]}), BAD_BUNDLE),
        "sealed-unit-id-not-hex.bundle": (sealed_units(unit_with(unit="unit-1")), BAD_BUNDLE),
        "sealed-key-missing.bundle": (
            sealed_units({"units": [{k: v for k, v in GOOD_UNIT.items() if k != "enc"}]}),
            BAD_BUNDLE,
        ),
        "sealed-key-not-hex.bundle": (sealed_units(unit_with(enc="zz" * 16)), BAD_BUNDLE),
        "sealed-key-too-short.bundle": (sealed_units(unit_with(ack="00" * 4)), BAD_BUNDLE),
        "sealed-heartbeat-string.bundle": (sealed_units(unit_with(heartbeat_s="3600")), BAD_BUNDLE),
        "sealed-heartbeat-zero.bundle": (sealed_units(unit_with(heartbeat_s=0)), BAD_BUNDLE),
    }


def line(counter: int, t: str, kind: Kind = Kind.HEARTBEAT, rssi: str = "-60") -> str:
    """One capture line of a verified frame, with `t` and `rssi` as written."""
    # An alert's id is the counter reserved before its first frame: below it.
    ad = encode(KEYS, Frame(kind, counter, alert_id=counter - 1 if kind == Kind.ALERT else 0))
    return f'{{"t": {t}, "ad": "{ad.hex()}", "rssi": {rssi}}}\n'


def captures() -> dict[str, tuple[bytes | str, int]]:
    good = line(0, "1000.0") + line(2, "1001.5", Kind.ALERT) + line(3, "1002", rssi="null")
    return {
        "good.jsonl": (good, OK),
        "empty.jsonl": ("", OK),
        "blank-lines.jsonl": ("\n\n" + line(0, "1000") + "\n   \n", OK),
        "no-final-newline.jsonl": (line(0, "1000").rstrip("\n"), OK),
        "crlf.jsonl": (line(0, "1000").replace("\n", "\r\n"), OK),
        "utf8-bom.jsonl": ("\ufeff" + line(0, "1000"), OK),
        "rssi-missing.jsonl": (line(0, "1000").replace(', "rssi": -60', ""), OK),
        "ad-wrong-length.jsonl": ('{"t": 1000, "ad": "00ff", "rssi": -60}\n', OK),
        "ad-unknown-unit.jsonl": ('{"t": 1000, "ad": "1eff' + "00" * 29 + '", "rssi": -60}\n', OK),
        "not-json.jsonl": ("hello\n", INPUT),
        "binary.jsonl": (bytes(range(256)), INPUT),
        "json-array.jsonl": ('[1000, "00", -60]\n', INPUT),
        "json-string.jsonl": ('"t"\n', INPUT),
        "json-nested-deep.jsonl": ('{"t": ' + "[" * 2000 + "\n", INPUT),
        "line-too-long.jsonl": ('{"t": 1000, "ad": "' + "00" * 4000 + '", "rssi": -60}\n', INPUT),
        "no-newline-huge.jsonl": ("0" * 10_000, INPUT),
        "t-nan.jsonl": (line(0, "NaN"), INPUT),
        "t-infinity.jsonl": (line(0, "Infinity"), INPUT),
        "t-minus-infinity.jsonl": (line(0, "-Infinity"), INPUT),
        "t-1e400.jsonl": (line(0, "1e400"), INPUT),
        "t-1e300.jsonl": (line(0, "1e300"), INPUT),
        "t-negative.jsonl": (line(0, "-1"), INPUT),
        "t-4000-digits.jsonl": (line(0, "1" + "0" * 3999), INPUT),
        "t-string.jsonl": (line(0, '"1000"'), INPUT),
        "t-bool.jsonl": (line(0, "true"), INPUT),
        "t-null.jsonl": (line(0, "null"), INPUT),
        "t-missing.jsonl": ('{"ad": "00", "rssi": -60}\n', INPUT),
        "ad-missing.jsonl": ('{"t": 1000, "rssi": -60}\n', INPUT),
        "ad-not-hex.jsonl": ('{"t": 1000, "ad": "xyz", "rssi": -60}\n', INPUT),
        "ad-number.jsonl": ('{"t": 1000, "ad": 1234, "rssi": -60}\n', INPUT),
        "rssi-nan.jsonl": (line(0, "1000", rssi="NaN"), INPUT),
        "rssi-string.jsonl": (line(0, "1000", rssi='"-60"'), INPUT),
        "rssi-float.jsonl": (line(0, "1000", rssi="-60.5"), INPUT),
        "rssi-out-of-range.jsonl": (line(0, "1000", rssi="-1000"), INPUT),
        "rssi-bool.jsonl": (line(0, "1000", rssi="false"), INPUT),
        "good-then-nan.jsonl": (line(0, "1000") + line(1, "NaN"), INPUT),
        "good-then-garbage.jsonl": (line(0, "1000") + "garbage\n", INPUT),
    }


def write(directory: Path, cases: dict[str, tuple[bytes | str, int]], **needs: str) -> None:
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        if old.name != "expected.json":
            old.unlink()
    for name, (content, _) in cases.items():
        data = content.encode() if isinstance(content, str) else content
        (directory / name).write_bytes(data)
    expected = {**needs, "exit_codes": {name: code for name, (_, code) in sorted(cases.items())}}
    (directory / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> None:
    about = "amr listen's exit code for each file here (0 good, 3 bundle, 5 input)"
    write(HERE / "bundle", bundles(), about=about, passphrase=PASSPHRASE)
    write(
        HERE / "capture",
        captures(),
        about=about,
        passphrase=PASSPHRASE,
        bundle="../bundle/good.bundle",
    )


if __name__ == "__main__":
    main()
