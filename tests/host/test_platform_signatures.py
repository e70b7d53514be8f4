"""The chip emulations (host/amrkit/twin/platform) against the documented API
in micropython-esp32-stubs: every public function and method the emulation
defines must exist in the stubs and accept what one of the stub's signatures
(overloads included) accepts, positional and keyword alike."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from amrkit.paths import REPO_DIR, platform_dir

STUBS = REPO_DIR / ".venv" / "mpy-stubs"
MODULES = ["machine", "esp32", "bluetooth", "time"]
Defs = dict[str, list[ast.FunctionDef]]


def definitions(path: Path) -> Defs:
    """'name' and 'Class.name' -> every def of it (overloads are several)."""
    out: Defs = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            out.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            out.setdefault(node.name, [])
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out.setdefault(f"{node.name}.{item.name}", []).append(item)
    return out


def accepts(emulated: ast.FunctionDef, documented: ast.FunctionDef) -> bool:
    """Can every call the documented signature allows reach the emulation?"""
    e, d = emulated.args, documented.args
    e_pos = [a.arg for a in e.posonlyargs + e.args]
    d_pos = [a.arg for a in d.posonlyargs + d.args]
    if len(d_pos) > len(e_pos) and e.vararg is None:
        return False
    e_names = set(e_pos) | {a.arg for a in e.kwonlyargs}
    d_keywords = {a.arg for a in d.args + d.kwonlyargs}
    return e.kwarg is not None or d_keywords <= e_names


def public(name: str) -> bool:
    return not any(part.startswith("_") and part != "__init__" for part in name.split("."))


CASES = [
    (module, name)
    for module in MODULES
    for name, defs in definitions(platform_dir() / f"{module}.py").items()
    if public(name) and defs
]


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_emulation_matches_stub_signature(module: str, name: str) -> None:
    stub = definitions(STUBS / f"{module}.pyi")
    assert name in stub, f"{module}.{name} is not in micropython-esp32-stubs"
    emulated = definitions(platform_dir() / f"{module}.py")[name][0]
    documented = stub[name]
    assert any(accepts(emulated, d) for d in documented), (
        f"{module}.{name}{ast.unparse(emulated.args)} does not accept the stub's "
        + " | ".join(f"({ast.unparse(d.args)})" for d in documented)
    )


def test_every_module_is_checked() -> None:
    assert {m for m, _ in CASES} == set(MODULES)


def documented_constants() -> dict[str, int]:
    """The event codes, flags and actions the bluetooth docs (in the stubs) list."""
    text = (STUBS / "bluetooth.pyi").read_text()
    return {
        name: int(value, 0)
        for name, value in re.findall(r"^\s*(_[A-Z_]+) = const\((0x[0-9a-fA-F]+|\d+)\)", text, re.M)
    }


CONTRACT = REPO_DIR / "firmware" / "amr" / "contract.py"
# Where these numbers were once spelled out again; now each imports them.
USERS = [
    REPO_DIR / "firmware" / "amr" / "gatt.py",
    REPO_DIR / "firmware" / "amr" / "radio.py",
    REPO_DIR / "firmware" / "amr" / "diag.py",
    platform_dir() / "bluetooth.py",
    platform_dir() / "machine.py",
    *sorted((REPO_DIR / "host" / "amrkit" / "twin" / "radio_peer").glob("*.py")),
    REPO_DIR / "host" / "amrkit" / "twin" / "unit.py",
    REPO_DIR / "host" / "amrkit" / "contract.py",
]
CONSTANT = re.compile(
    r"^_?((?:IRQ|FLAG|PASSKEY_ACTION|IO_CAPABILITY|ADDR|ADV)_[A-Z_]+|[A-Z]+_(?:RESET|WAKE)) = "
    r"(?:const\()?(0x[0-9a-fA-F]+|\d+)",
    re.M,
)


def test_the_contract_has_the_documented_values() -> None:
    documented = documented_constants()
    assert documented["_IRQ_GET_SECRET"] == 29  # the docs parsed as expected
    machine = {
        name: int(value)
        for name, value in re.findall(
            r"^([A-Z0-9_]+): Final\[int\] = (\d+)", (STUBS / "machine.pyi").read_text(), re.M
        )
    }
    checked = 0
    for name, value in CONSTANT.findall(CONTRACT.read_text()):
        if "_" + name in documented:
            assert int(value, 0) == documented["_" + name], name
            checked += 1
        elif name in machine:
            assert int(value, 0) == machine[name], name
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize("path", USERS, ids=lambda p: str(p.relative_to(REPO_DIR)))
def test_no_module_spells_out_a_contract_number_again(path: Path) -> None:
    assert CONSTANT.findall(path.read_text()) == []
