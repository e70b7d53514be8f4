"""The store's toolkit as a technician uses it, against twin units: `amr
flash` (real esptool, mpremote's transport), `amr provision`, `amr check`
with its guided press over the virtual radio, `amr bundle export`, `amr
units issue/return`, `amr wipe`, and the registry's audit log, each run as
a subprocess with the registry in a temporary SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import zxingcpp
from PIL import Image
from sim_control import control

from amrkit import build
from amrkit.boards import load_board
from amrkit.bundle import read_bundle
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim

AMR = str(Path(sys.executable).with_name("amr"))
PASS = "store test passphrase"
EXIT_UNFIT, EXIT_REGISTRY, EXIT_UNIT = 7, 8, 6


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("store")
    app = build.build(load_board(), root / "build")
    image = root / "c3.bin"
    image.write_bytes(stand_in_image())
    env = {
        **os.environ,
        "AMR_REGISTRY": f"sqlite:///{root / 'registry.sqlite'}",
        "AMR_MASTER_KEY_FILE": str(root / "master.key"),
        "AMR_ACTOR": "tech-1",
        "AMR_BUNDLE_PASSPHRASE": PASS,
    }
    # Deep sleep in real time: test mode's minutes must not pass in a blink.
    with Sim(2, load_board(), root / "fleet", blank=True, speed=1.0) as sim:
        urls = {name: str(u.announce()["serial"]) for name, u in sim.units.items()}
        ns = SimpleNamespace(
            sim=sim, urls=urls, app=app, image=image, root=root, env=env, deployed={}
        )
        made = amr(ns, "units", "init", "--master-key-file", env["AMR_MASTER_KEY_FILE"])
        assert made.returncode == 0, made.stderr
        yield ns


def amr(store: SimpleNamespace, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AMR, *args], capture_output=True, text=True, timeout=300, env=store.env, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def flash(store: SimpleNamespace, name: str) -> dict[str, object]:
    result = amr(store, "flash", "--port", store.urls[name], "--image", str(store.image),
                 "--app", str(store.app), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    line: dict[str, object] = json.loads(result.stdout)
    return line


def provision(store: SimpleNamespace, name: str) -> dict[str, object]:
    result = amr(store, "provision", "--port", store.urls[name],
                 "--label-dir", str(store.root / "labels"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout)
    return out


def deployed(store: SimpleNamespace, name: str) -> str:
    """Flash and provision `name` once, for the tests that need it issued
    with an app and keys, whichever of them runs first; its unit id."""
    if name not in store.deployed:
        store.deployed[name] = str(flash(store, name)["unit_id"])
        provision(store, name)
    return str(store.deployed[name])


def check(store: SimpleNamespace, name: str, *, press: bool = True) -> tuple[int, dict, str]:
    """`amr check` with a person pressing the button when it asks."""
    cert = store.root / f"{name}-check.html"
    proc = subprocess.Popen(
        [AMR, "check", "--port", store.urls[name], "--transport", store.sim.ble,
         "--release", str(store.app.parent / "release.json"), "--press-timeout", "30",
         "--certificate", str(cert), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=store.env,
    )  # fmt: skip
    assert proc.stderr is not None
    err = ""
    for line in proc.stderr:
        err += line
        if line.startswith(">>> press") and press:
            assert control(store.sim, {"cmd": "taps", "unit": name, "count": 3})["ok"]
            break
    out, rest = proc.communicate(timeout=300)
    err += rest
    assert "Traceback" not in err, err
    report = json.loads(out) if out.strip() else {}
    return proc.returncode, report, err


def asleep(unit: object) -> None:
    """Before the test writes the unit's flash file itself: its app is not
    awake (and writing) meanwhile."""
    deadline = time.monotonic() + 60
    while unit.awake_clock() is not None:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the unit never went back to sleep"
        time.sleep(0.1)


def state(store: SimpleNamespace, unit_id: str) -> str:
    result = amr(store, "units", "show", unit_id, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["state"])


def test_stock_to_issued_and_back(store: SimpleNamespace) -> None:
    flashed = flash(store, "unit-1")
    unit_id = str(flashed["unit_id"])
    assert state(store, unit_id) == "flashed"

    done = provision(store, "unit-1")
    assert done["unit_id"] == unit_id and done["key_generation"] == 1
    label = Path(str(done["label"]))
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(label))] == [f"AMR:UNIT:{unit_id}"]
    info = amr(store, "info", "--port", store.urls["unit-1"], "--json")
    assert info.returncode == 0, info.stdout + info.stderr
    assert json.loads(info.stdout)["key_generation"] == 1

    # No issue without a passing check.
    refused = amr(store, "units", "issue", unit_id, "--case", "PV-2026-0412")
    assert refused.returncode == EXIT_REGISTRY and "check" in refused.stderr
    assert state(store, unit_id) == "provisioned"

    code, report, err = check(store, "unit-1")
    assert code == 0, (err, [r for r in report.get("checks", []) if not r["passed"]])
    rows = {row["name"]: row for row in report["checks"]}
    assert set(rows) == {"app", "keys", "records", "counter", "battery", "cell", "health", "press"}
    assert all(row["passed"] for row in rows.values()), rows
    assert (
        "test press heard" in rows["press"]["measured"]
        and "acknowledged" in rows["press"]["measured"]
    )
    assert report["press"]["rssi"] is not None
    assert Path(report["certificate"]).read_text().count("PASSED") == 1
    assert state(store, unit_id) == "checked"
    # The test press never reached anyone as an alert, and test mode is over.
    after = json.loads(amr(store, "info", "--port", store.urls["unit-1"], "--json").stdout)
    assert after["test_mode_s"] == 0 and after["state"]["pending_alerts"] == 0

    bundle = store.root / "rx-a1.bundle"
    exported = amr(store, "bundle", "export", "--unit", unit_id, "--receiver", "RX-A1",
                   "--out", str(bundle), "--json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    (known,) = read_bundle(bundle, PASS)
    assert known.unit == unit_id
    qr = json.loads(exported.stdout)["qr"]
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(qr))] == [bundle.read_text()]

    issued = amr(store, "units", "issue", unit_id, "--case", "PV-2026-0412")
    assert issued.returncode == 0, issued.stderr
    # No wipe of an issued unit: refused before the unit is touched.
    early = amr(store, "wipe", "--port", store.urls["unit-1"])
    assert early.returncode == EXIT_REGISTRY and "returned" in early.stderr
    still = json.loads(amr(store, "info", "--port", store.urls["unit-1"], "--json").stdout)
    assert still["provisioned"] and still["key_generation"] == 1

    assert amr(store, "units", "return", unit_id).returncode == 0
    wiped = amr(store, "wipe", "--port", store.urls["unit-1"], "--json")
    assert wiped.returncode == 0, wiped.stderr
    blank = amr(store, "info", "--port", store.urls["unit-1"])
    assert blank.returncode == EXIT_UNFIT and "not provisioned: run amr provision" in blank.stdout
    assert state(store, unit_id) == "wiped"

    audit = amr(store, "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    actions = [e["action"] for e in json.loads(amr(store, "audit", "list", "--unit", unit_id,
                                                       "--json").stdout)]  # fmt: skip
    for step in ("flash", "provision", "check", "bundle export", "issue", "return", "wipe"):
        assert step in actions, actions
    csv = store.root / "units.csv"
    assert amr(store, "units", "export", "--out", str(csv)).returncode == 0
    assert unit_id in csv.read_text() and PASS not in csv.read_text()


def test_a_tampered_app_fails_the_check(store: SimpleNamespace) -> None:
    unit_id = deployed(store, "unit-2")
    app_file = store.sim.directory / "unit-2" / "fs" / "amr" / "press.mpy"
    original = app_file.read_bytes()
    app_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        code, report, err = check(store, "unit-2", press=False)
    finally:
        app_file.write_bytes(original)
    assert code == EXIT_UNFIT, err
    rows = {row["name"]: row for row in report["checks"]}
    assert not rows["app"]["passed"] and rows["keys"]["passed"]
    assert not report["passed"] and state(store, unit_id) == "provisioned"
    shown = json.loads(amr(store, "units", "show", unit_id, "--json").stdout)
    assert shown["reports"][-1]["passed"] is False  # the failing report is kept, signed


def test_a_corrupted_key_store_fails_the_check_with_its_reason(store: SimpleNamespace) -> None:
    deployed(store, "unit-2")
    unit = store.sim.units["unit-2"].unit
    asleep(unit)
    nvs = unit.nvs()
    saved = json.dumps(nvs)
    for key in ("p0", "p1"):
        if key in nvs["amr"]:
            blob = bytearray.fromhex(nvs["amr"][key]["blob"])
            blob[20] ^= 0xFF  # inside the keys: the record's CRC no longer holds
            nvs["amr"][key]["blob"] = blob.hex()
    nvs_file = unit.directory / "nvs.json"
    nvs_file.write_text(json.dumps(nvs))
    try:
        code, report, err = check(store, "unit-2", press=False)
    finally:
        nvs_file.write_text(saved)
    assert code == EXIT_UNFIT, err
    rows = {row["name"]: row for row in report["checks"]}
    print(json.dumps(rows, indent=1))
    assert not rows["keys"]["passed"] and not rows["records"]["passed"]
    assert "corrupt" in rows["records"]["measured"], rows["records"]


def export(
    store: SimpleNamespace, unit_id: str, receiver: str, out: Path
) -> subprocess.CompletedProcess[str]:
    return amr(store, "bundle", "export", "--unit", unit_id, "--receiver", receiver,
               "--out", str(out))  # fmt: skip


def test_a_second_receiver_needs_new_keys(store: SimpleNamespace) -> None:
    unit_id = deployed(store, "unit-2")
    assert provision(store, "unit-2")["unit_id"] == unit_id  # keys no receiver has had
    first = store.root / "rx-c3.bundle"
    second = store.root / "rx-d4.bundle"
    ok = amr(
        store, "bundle", "export", "--unit", unit_id, "--receiver", "RX-C3", "--out", str(first)
    )
    assert ok.returncode == 0, ok.stderr
    again = amr(
        store, "bundle", "export", "--unit", unit_id, "--receiver", "RX-D4", "--out", str(second)
    )
    assert again.returncode == EXIT_REGISTRY and "rotate" in again.stderr
    assert not second.exists()
    rotated = provision(store, "unit-2")
    assert rotated["unit_id"] == unit_id
    ok = amr(
        store, "bundle", "export", "--unit", unit_id, "--receiver", "RX-D4", "--out", str(second)
    )
    assert ok.returncode == 0, ok.stderr
    (old,) = read_bundle(first, PASS)
    (new,) = read_bundle(second, PASS)
    assert old.keys != new.keys  # the first receiver can no longer verify the unit


def test_a_failed_step_leaves_the_registry_as_it_was(store: SimpleNamespace) -> None:
    before = amr(store, "audit", "list", "--json").stdout
    gone = amr(store, "provision", "--port", "rfc2217://127.0.0.1:9")
    assert gone.returncode == EXIT_UNIT
    assert amr(store, "audit", "list", "--json").stdout == before


def test_a_check_without_a_radio_stops_at_once_and_leaves_no_test_mode(
    store: SimpleNamespace,
) -> None:
    deployed(store, "unit-2")
    before = amr(store, "audit", "list", "--json").stdout
    release = str(store.app.parent / "release.json")
    result = amr(store, "check", "--port", store.urls["unit-2"], "--transport",
                 "tcp-client:127.0.0.1:1", "--release", release)  # fmt: skip
    assert result.returncode == 4 and "cannot open the BLE transport" in result.stderr
    assert amr(store, "audit", "list", "--json").stdout == before  # nothing recorded
    info = json.loads(amr(store, "info", "--port", store.urls["unit-2"], "--json").stdout)
    assert info["test_mode_s"] == 0  # a unit is never left turning alarms into tests
