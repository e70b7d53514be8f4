"""`amr flash` and `amr images` as a user runs them, against twin units:
real esptool (library API, its stub) writes the image, mpremote's transport
deploys the app, and the unit hashes what it holds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from esptool.bin_image import ELFSection, ESP32S3FirmwareImage

from amrkit import build, ports
from amrkit.boards import load_board
from amrkit.flashing import app_hash_on_unit
from amrkit.release import read_release_manifest
from amrkit.twin.serial.image import stand_in_image
from amrkit.twin.sim import Sim

AMR = str(Path(sys.executable).with_name("amr"))


def amr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if args[0] == "flash":  # these tests are about flashing; the registry's are in test_store
        args = (*args, "--no-registry")
    return subprocess.run(
        [AMR, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("flash")
    app = build.build(load_board(), root / "build")
    image = root / "c3.bin"
    image.write_bytes(stand_in_image())
    with Sim(2, load_board(), root / "fleet") as sim:
        urls = [str(u.announce()["serial"]) for u in sim.units.values()]
        yield SimpleNamespace(sim=sim, urls=urls, app=app, image=image, root=root)


def unit_dir(fleet: SimpleNamespace, n: int) -> Path:
    return Path(fleet.sim.directory) / f"unit-{n}"


def s3_image(path: Path) -> Path:
    image = ESP32S3FirmwareImage()
    image.entrypoint = 0x40380000
    image.segments = [ELFSection(b".iram0.text", 0x40380000, bytes(64), 0)]
    path.write_bytes(image.save(None))
    return path


def test_flash_two_units_in_parallel(fleet: SimpleNamespace) -> None:
    a, b = fleet.urls
    result = amr(
        "flash", "--port", a, "--port", b, "--image", str(fleet.image),
        "--app", str(fleet.app), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    manifest = read_release_manifest(fleet.app)
    assert {r["port"] for r in lines} == {a, b}
    for r in lines:
        assert r["ok"] and r["chip"] == "ESP32-C3" and r["version"] == manifest["version"]
        assert r["app_hash"] == manifest["app_hash"]
    assert len({r["mac"] for r in lines}) == 2
    for n in (1, 2):
        on_unit = json.loads((unit_dir(fleet, n) / "fs" / "release.json").read_text())
        assert on_unit["app_hash"] == manifest["app_hash"]
    # What amr check will do: the unit's own hash of its files.
    assert app_hash_on_unit(a) == manifest["app_hash"]


def test_a_blank_board_is_flashed_without_a_word_about_its_app(
    fleet: SimpleNamespace, tmp_path: Path
) -> None:
    # Nothing answers on a blank board before the flash: no app to hand back,
    # so no warning that it did not restart (the EN reset at the end starts it).
    with Sim(1, load_board(), tmp_path / "blank", blank=True) as sim:
        url = str(sim.units["unit-1"].announce()["serial"])
        result = amr("flash", "--port", url, "--image", str(fleet.image), "--app", str(fleet.app))
    assert result.returncode == 0, result.stderr
    assert "did not restart its app" not in result.stderr + result.stdout


def test_the_hash_check_catches_a_file_altered_on_the_unit(fleet: SimpleNamespace) -> None:
    manifest = read_release_manifest(fleet.app)
    assert amr("flash", "--port", fleet.urls[1], "--image", str(fleet.image),
               "--app", str(fleet.app)).returncode == 0  # fmt: skip
    target = unit_dir(fleet, 2) / "fs" / "main.py"
    target.write_text(target.read_text() + "\n# altered\n")
    assert app_hash_on_unit(fleet.urls[1]) != manifest["app_hash"]


def test_wrong_chip_image_is_refused_and_nothing_is_written(fleet: SimpleNamespace) -> None:
    flash_bin = unit_dir(fleet, 1) / "flash.bin"
    before = flash_bin.read_bytes()
    s3 = s3_image(fleet.root / "s3.bin")
    result = amr("flash", "--port", fleet.urls[0], "--image", str(s3), "--app", str(fleet.app))
    assert result.returncode == 5
    assert "ESP32-S3" in result.stderr and "ESP32-C3" in result.stderr
    assert "Traceback" not in result.stderr
    assert flash_bin.read_bytes() == before


def test_an_older_app_is_refused_without_force(fleet: SimpleNamespace) -> None:
    release = unit_dir(fleet, 1) / "fs" / "release.json"
    release.write_text(json.dumps({"version": "99.0.0", "files": {}, "app_hash": ""}))
    args = ("flash", "--port", fleet.urls[0], "--image", str(fleet.image), "--app", str(fleet.app))
    refused = amr(*args)
    assert refused.returncode == 5 and "99.0.0" in refused.stderr and "--force" in refused.stderr
    assert json.loads(release.read_text())["version"] == "99.0.0"  # untouched
    forced = amr(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(release.read_text())["version"] != "99.0.0"


def test_image_cache_add_list_flash_and_tamper(fleet: SimpleNamespace, tmp_path: Path) -> None:
    cache = tmp_path / "images"
    env = {**__import__("os").environ, "AMR_IMAGES": str(cache)}
    wrong = amr("images", "add", str(s3_image(tmp_path / "s3.bin")), "--board", "esp32c3-coin",
                env=env)  # fmt: skip
    assert wrong.returncode == 5 and "ESP32-S3" in wrong.stderr
    added = amr("images", "add", str(fleet.image), "--board", "esp32c3-coin", env=env)
    assert added.returncode == 0, added.stderr
    listed = json.loads(amr("images", "list", "--json", env=env).stdout)
    assert [i["board"] for i in listed["images"]] == ["esp32c3-coin"]
    ok = amr("flash", "--port", fleet.urls[0], "--app", str(fleet.app), env=env)
    assert ok.returncode == 0, ok.stderr
    cached = cache / listed["images"][0]["file"]
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")
    tampered = amr("flash", "--port", fleet.urls[0], "--app", str(fleet.app), env=env)
    assert tampered.returncode == 5 and "does not match the cache manifest" in tampered.stderr


def test_user_errors_end_in_a_message_and_an_exit_code(
    fleet: SimpleNamespace, tmp_path: Path
) -> None:
    app = ("--app", str(fleet.app))
    missing = amr("flash", "--port", fleet.urls[0], "--image", str(tmp_path / "nope.bin"), *app)
    assert missing.returncode == 5 and "cannot read the image" in missing.stderr
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not an image at all")
    not_image = amr("flash", "--port", fleet.urls[0], "--image", str(junk), *app)
    assert not_image.returncode == 5 and "not a MicroPython image" in not_image.stderr
    no_port = amr("flash", "--port", "/dev/ttyNOPE9", "--image", str(fleet.image), *app)
    assert no_port.returncode == 6 and "does not exist" in no_port.stderr
    for result in (missing, not_image, no_port):
        assert "Traceback" not in result.stderr


# -- port auto-detect (list_ports is the one fake: no USB devices here) ---------


def fake_ports(monkeypatch: pytest.MonkeyPatch, *found: tuple[str, int, int]) -> None:
    infos = [
        SimpleNamespace(device=d, vid=v, pid=p, serial_number=None, description="")
        for d, v, p in found
    ]
    monkeypatch.setattr(ports.list_ports, "comports", lambda: infos)


def test_resolve_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ports.resolve_port("/dev/ttyX") == "/dev/ttyX"
    fake_ports(monkeypatch, ("/dev/ttyACM0", 0x303A, 0x1001), ("/dev/ttyS0", 0x1234, 0x1))
    assert ports.resolve_port(None) == "/dev/ttyACM0"
    fake_ports(monkeypatch, ("/dev/ttyUSB1", 0x1A86, 0x7523), ("/dev/ttyUSB0", 0x10C4, 0xEA60))
    with pytest.raises(ports.PortError) as several:
        ports.resolve_port(None)
    assert several.value.several == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert "--port" in str(several.value) and "CH340" in str(several.value)
    fake_ports(monkeypatch)
    with pytest.raises(ports.PortError) as none:
        ports.resolve_port(None)
    assert none.value.several == [] and "no unit found" in str(none.value)
