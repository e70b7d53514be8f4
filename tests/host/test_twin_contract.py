"""The twin's contract (host/amrkit/twin/platform/_contract.py) holds on
every side: what the chip emulations read of unit.json is what the
supervisor (amrkit.twin.unit) writes, what they write to exit.json is what
it reads, and every operation the bluetooth emulation sends has a handler
in the radio peer's table. The emulations name keys and operations only
through the contract, so a new one cannot slip past these checks."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from amrkit.boards import load_board
from amrkit.paths import REPO_DIR, platform_dir
from amrkit.twin.platform import _contract
from amrkit.twin.radio_peer.device import OPS
from amrkit.twin.unit import VirtualUnit

EMULATIONS = sorted(p for p in platform_dir().glob("*.py") if p.name != "_contract.py")
SUPERVISOR = REPO_DIR / "host" / "amrkit" / "twin" / "unit.py"
CONTRACT_MODULES = ("_contract", "amrkit.twin.platform._contract")


def parse(path: Path) -> tuple[ast.Module, dict[str, object]]:
    """The module, and the contract's names it imports with their values."""
    tree = ast.parse(path.read_text())
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in CONTRACT_MODULES:
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(_contract, alias.name)
    return tree, names


def named(key: ast.expr, names: dict[str, object]) -> object:
    """The contract's value for a key spelled as one of its names; anything
    else shows up in an assertion as itself."""
    if isinstance(key, ast.Name) and key.id in names:
        return names[key.id]
    return f"<{ast.unparse(key)}: not a name from the contract>"


def keys_of(
    tree: ast.AST, names: dict[str, object], holds: Callable[[ast.expr], bool]
) -> set[object]:
    """Keys looked up (x[k], x.get(k)) or set (x[k] = v) in what holds(x) says is the file."""
    keys: set[object] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and holds(node.value):
            keys.add(named(node.slice, names))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and holds(node.func.value)
        ):
            keys.add(named(node.args[0], names))
    return keys


def unit_file_keys_read(path: Path) -> set[object]:
    """What an emulation reads of unit.json: _twin.UNIT, _twin.latest() and
    the names bound to them."""
    tree, names = parse(path)
    bound: set[str] = set()

    def holds(x: ast.expr) -> bool:
        if isinstance(x, ast.Name):
            return x.id == "UNIT" or x.id in bound
        if isinstance(x, ast.Attribute):
            return x.attr == "UNIT"
        if isinstance(x, ast.Call):
            f = x.func
            return (f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)) == "latest"
        if isinstance(x, ast.IfExp):
            return holds(x.body) and holds(x.orelse)
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and holds(node.value):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return keys_of(tree, names, holds)


def test_the_supervisor_writes_the_contracts_unit_file(tmp_path: Path) -> None:
    unit = VirtualUnit(tmp_path / "unit", load_board())
    written = unit._unit_file(1, 0, None, False)
    assert sorted(written) == sorted(_contract.UNIT_KEYS)
    assert sorted(written[_contract.ADC_UV]) == sorted(_contract.DRAWS)


@pytest.mark.parametrize("path", EMULATIONS, ids=lambda p: p.name)
def test_the_emulations_read_only_what_the_supervisor_writes(path: Path) -> None:
    assert unit_file_keys_read(path) <= set(_contract.UNIT_KEYS)


def test_every_unit_file_key_is_read_by_some_emulation() -> None:
    read = set().union(*(unit_file_keys_read(path) for path in EMULATIONS))
    assert read == set(_contract.UNIT_KEYS)


def test_exit_file_written_and_read_alike() -> None:
    written: set[object] = set()
    for path in EMULATIONS:
        tree, names = parse(path)
        for node in ast.walk(tree):  # stop(code, {KEY: ...}), and stop's own fields[KEY] = ...
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("stop", "_twin.stop"):
                for extra in node.args[1:]:
                    assert isinstance(extra, ast.Dict)
                    written.update(named(k, names) for k in extra.keys if k is not None)
            if isinstance(node, ast.FunctionDef) and node.name == "stop":
                written |= keys_of(node, names, lambda x: ast.unparse(x) == "fields")
    tree, names = parse(SUPERVISOR)
    read = keys_of(tree, names, lambda x: ast.unparse(x) == "info")
    assert written == set(_contract.EXIT_KEYS)
    assert read <= written


def test_every_operation_sent_has_a_handler_in_the_radio_peer() -> None:
    tree, names = parse(platform_dir() / "_ble_live.py")
    sent: set[object] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "self._call":
            sent.add(named(node.args[0], names))
        elif isinstance(node, ast.Dict):  # the reply to an IRQ the peer asked about
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "op":
                    sent.add(named(value, names))
    operations = {v for k, v in vars(_contract).items() if k.startswith("OP_")}
    assert sent == operations
    assert set(OPS) == operations - {_contract.OP_REPLY}  # the reply is the wire's own


def test_what_the_radio_draws_is_what_the_supervisor_reads_the_cell_under() -> None:
    drawn: set[object] = set()
    for path in EMULATIONS:
        tree, names = parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                ast.unparse(t) in ("drawing", "_twin.drawing") for t in node.targets
            ):
                drawn.add(named(node.value, names))
    assert drawn and drawn <= set(_contract.DRAWS)


def test_no_exit_code_is_spelled_out_again() -> None:
    for path in [*EMULATIONS, SUPERVISOR]:
        tree, _ = parse(path)
        assigned = {
            t.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert not {n for n in assigned if n.startswith("EXIT_")}, path
