"""The production image recipe (firmware/image/, tools/build_image.py), checked
without the toolchain: what the manifest freezes, the board definition's
files, the sdkconfig options, and `make image` on a machine without
MicroPython's source or ESP-IDF."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
IMAGE = FIRMWARE / "image"
BOARDS = sorted(p for p in (IMAGE / "boards").iterdir() if p.is_dir())
SCRIPT = REPO / "tools" / "build_image.py"
PORT_MANIFEST = "$(PORT_DIR)/boards/manifest.py"

sys.path.insert(0, str(REPO / "tools"))
import build_image  # noqa: E402

from amrkit.boards import board_names, load_board  # noqa: E402


def board_ids(boards: list[Path]) -> list[str]:
    return [b.name for b in boards]


def frozen_by(manifest: Path) -> tuple[set[str], list[str]]:
    """(target paths frozen, manifests included) when MicroPython's manifest
    runner executes `manifest`: package() and module() are resolved as
    tools/manifestfile.py does, relative to the manifest's directory."""
    frozen: set[str] = set()
    included: list[str] = []
    here = manifest.parent

    def package(
        package_path: str, files: Any = None, base_path: str = ".", opt: Any = None
    ) -> None:
        assert files is None, "the whole package is frozen, not a hand-kept list"
        root = (here / base_path).resolve()
        for path in (root / package_path).rglob("*.py"):
            frozen.add(path.relative_to(root).as_posix())

    def module(module_path: str, base_path: str = ".", opt: Any = None) -> None:
        path = (here / base_path / module_path).resolve()
        assert path.is_file(), path
        frozen.add(module_path)

    def include(manifest_path: str, **kwargs: Any) -> None:
        included.append(manifest_path)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("freeze()/require() would add modules beyond the app")

    api: dict[str, Callable[..., None]] = {
        "package": package,
        "module": module,
        "include": include,
        "freeze": refuse,
        "freeze_as_mpy": refuse,
        "freeze_mpy": refuse,
        "require": refuse,
    }
    exec(compile(manifest.read_text(), str(manifest), "exec"), dict(api))
    return frozen, included


def app_modules() -> set[str]:
    """What `amr build` deploys as the app: every module of amr/ and main.py."""
    modules = {
        p.relative_to(FIRMWARE).as_posix()
        for p in (FIRMWARE / "amr").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    return modules | {"main.py"}


def test_there_is_a_board_definition() -> None:
    # Every board profile that defaults to the production image can build it.
    frozen = [name for name in board_names() if load_board(name).deployment == "frozen"]
    assert sorted(frozen) == ["esp32c3-coin", "esp32c3-devkit", "esp32c6-coin", "esp32h2-coin"]
    missing = [name for name in frozen if name not in build_image.BOARD_DIRS]
    assert not missing, f"frozen by default but no image definition: {missing}"
    # ... and every definition is used by a profile, and exists.
    assert [b.name for b in BOARDS] == sorted(set(build_image.BOARD_DIRS.values()))
    assert set(build_image.BOARD_DIRS) <= set(board_names())


@pytest.mark.parametrize("board", BOARDS, ids=board_ids(BOARDS))
def test_manifest_freezes_exactly_the_app(board: Path) -> None:
    frozen, included = frozen_by(board / "manifest.py")
    assert frozen == app_modules()
    assert "amr/board.py" in frozen  # the generated module goes in too
    assert not [f for f in frozen if f.startswith(("tests/", "host/", "tools/", "image/"))]
    assert included == [PORT_MANIFEST]


@pytest.mark.parametrize("board", BOARDS, ids=board_ids(BOARDS))
def test_board_json_names_the_mcu(board: Path) -> None:
    data = json.loads((board / "board.json").read_text())
    profile = next(p for p, d in build_image.BOARD_DIRS.items() if d == board.name)
    chip = build_image.load_board(profile).chip  # e.g. "ESP32-C3"
    assert data["mcu"] == chip.lower().replace("-", "")
    assert "BLE" in data["features"]


TARGETS = ("esp32c3", "esp32c6", "esp32h2")

# Per target, the options that differ by chip and that the wake time and the
# cell depend on: the fastest flash clock, and the BLE controller's default TX
# power at 0 dBm (the C3's controller has BT_CTRL_ options, the C6's and H2's
# BT_LE_ ones).
CHIP_OPTIONS = {
    "esp32c3": ("ESPTOOLPY_FLASHFREQ_80M", "BT_CTRL_DFT_TX_POWER_LEVEL_N0"),
    "esp32c6": ("ESPTOOLPY_FLASHFREQ_80M", "BT_LE_DFT_TX_POWER_LEVEL_N0"),
    "esp32h2": ("ESPTOOLPY_FLASHFREQ_64M", "BT_LE_DFT_TX_POWER_LEVEL_N0"),
}


def known_options() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Option name -> (where ESP-IDF defines it, the targets it applies to),
    from kconfig-options.txt; a trailing [target, ...] limits the targets."""
    options = {}
    for line in (IMAGE / "kconfig-options.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, where = line.split(None, 1)
            match = re.fullmatch(r"(.*?)\s*\[([a-z0-9, ]+)\]", where)
            if match:
                where = match[1]
                targets = tuple(t.strip() for t in match[2].split(","))
            else:
                targets = TARGETS
            options[name] = (where, targets)
    return options


def idf_target(board: Path) -> str:
    text = (board / "mpconfigboard.cmake").read_text()
    match = re.search(r"^set\(IDF_TARGET\s+(\w+)\)", text, re.MULTILINE)
    assert match, "mpconfigboard.cmake sets no IDF_TARGET"
    return match[1]


@pytest.mark.parametrize("board", BOARDS, ids=board_ids(BOARDS))
def test_sdkconfig_sets_only_known_options(board: Path) -> None:
    known = known_options()
    target = idf_target(board)
    seen = []
    for n, line in enumerate((board / "sdkconfig.board").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"CONFIG_([A-Z0-9_]+)=(y|n|-?\d+|0x[0-9a-fA-F]+|\"[^\"]*\")", line)
        assert match, f"sdkconfig.board:{n}: not CONFIG_NAME=VALUE: {line!r}"
        assert match[1] in known, f"sdkconfig.board:{n}: {match[1]} is not in kconfig-options.txt"
        assert target in known[match[1]][1], f"sdkconfig.board:{n}: {match[1]} is not for {target}"
        seen.append(match[1])
    assert len(seen) == len(set(seen)), "an option is set twice"
    # The settings the wake time depends on are all there.
    for name in (
        "BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP",
        "BOOTLOADER_LOG_LEVEL_NONE",
        "BOOT_ROM_LOG_ALWAYS_OFF",
        "LOG_DEFAULT_LEVEL_NONE",
        "ESPTOOLPY_FLASHMODE_QIO",
        *CHIP_OPTIONS[target],
    ):
        assert name in seen, name


def test_known_options_name_where_they_are_defined() -> None:
    for name, (where, targets) in known_options().items():
        assert re.fullmatch(r"[A-Z0-9_]+", name), name
        assert where.startswith("components/"), (name, where)
        assert targets and set(targets) <= set(TARGETS), (name, targets)
        # A controller's Kconfig applies to its own chips only.
        for chip in re.findall(r"components/bt/controller/(\w+)/", where):
            assert chip in targets, (name, chip)


@pytest.mark.parametrize("board", BOARDS, ids=board_ids(BOARDS))
def test_mpconfigboard_cmake_sets_what_micropython_needs(board: Path) -> None:
    text = (board / "mpconfigboard.cmake").read_text()
    sets = dict(re.findall(r"^set\((\w+)\s+(.*?)\)\s*$", text, re.MULTILINE | re.DOTALL))
    profile = next(p for p, d in build_image.BOARD_DIRS.items() if d == board.name)
    chip = build_image.load_board(profile).chip  # e.g. "ESP32-C3"
    assert sets["IDF_TARGET"] == chip.lower().replace("-", "")
    assert sets["IDF_TARGET"] == build_image.idf_target(profile)
    defaults = sets["SDKCONFIG_DEFAULTS"].split()
    assert defaults[0] == "boards/sdkconfig.base"
    assert "boards/sdkconfig.ble" in defaults
    assert defaults[-1] == "${MICROPY_BOARD_DIR}/sdkconfig.board"  # last, so it wins
    assert sets["MICROPY_FROZEN_MANIFEST"] == "${MICROPY_BOARD_DIR}/manifest.py"
    assert (board / "mpconfigboard.h").read_text().count("MICROPY_HW_MCU_NAME") == 1


def test_dropped_options_are_reported(tmp_path: Path) -> None:
    wanted = tmp_path / "sdkconfig.board"
    wanted.write_text("# fast\nCONFIG_A=y\nCONFIG_B=y\n")
    resolved = tmp_path / "sdkconfig"
    resolved.write_text("CONFIG_A=y\n# CONFIG_B is not set\n")
    assert build_image.dropped_options(wanted, resolved) == ["CONFIG_B=y (resolved: not set)"]


def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
    )


def bare_env() -> dict[str, str]:
    """This environment without the toolchain: no MICROPY_DIR, IDF_PATH or idf.py."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MICROPY_DIR", "IDF_PATH", "AMR_FIRMWARE") and not k.startswith("IDF_")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    return env


def test_image_without_toolchain_says_what_is_needed() -> None:
    board_module = FIRMWARE / "amr" / "board.py"
    before = (board_module.read_text(), board_module.stat().st_mtime_ns)
    proc = run_script(env=bare_env())
    assert proc.returncode == build_image.EXIT_TOOLCHAIN, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needed in (
        "MICROPY_DIR is not set",
        "IDF_PATH is not set",
        "idf.py is not on PATH",
        f"MicroPython {build_image.MICROPYTHON_VERSION}",
        f"ESP-IDF {build_image.IDF_VERSION}",
        "git clone -b",
        "export.sh",
    ):
        assert needed in proc.stderr, needed
    # Nothing written: the tree's board module is what the twins of other
    # tests import meanwhile.
    assert (board_module.read_text(), board_module.stat().st_mtime_ns) == before


def test_image_with_a_tree_that_is_not_micropython(tmp_path: Path) -> None:
    env = bare_env() | {"MICROPY_DIR": str(tmp_path)}
    proc = run_script(env=env)
    assert proc.returncode == build_image.EXIT_TOOLCHAIN
    assert f"MICROPY_DIR={tmp_path} has no ports/esp32/Makefile" in proc.stderr


def test_image_for_a_board_without_a_definition() -> None:
    proc = run_script("--board", "no-such-board", env=bare_env())
    assert proc.returncode == build_image.EXIT_INPUT
    assert "no-such-board: no production image definition" in proc.stderr
    assert "Traceback" not in proc.stderr
