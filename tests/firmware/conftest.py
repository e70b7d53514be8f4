"""Collects tests/firmware/test_*.py as MicroPython tests.

Each file runs once, as a whole, under the unix-port `micropython` (from
.venv, or $MICROPYTHON); every `test_*` function becomes one pytest item whose
outcome and traceback come from that run. The files are never imported by
CPython.
"""

from __future__ import annotations

import ast
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from amrkit.paths import firmware_dir, micropython_binary, platform_dir

HERE = Path(__file__).parent
RESULT = "@@amr-result"
TIMEOUT_S = 600


def micropython_path() -> str:
    """Search path: test helpers, the firmware tree, then the chip emulations."""
    return os.pathsep.join(
        [str(HERE), str(firmware_dir()), str(platform_dir()), str(platform_dir().parent), ".frozen"]
    )


def run_module(module: str) -> dict[str, tuple[str, str]]:
    env = dict(os.environ, MICROPYPATH=micropython_path())
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=4M", str(HERE / "mpyunit.py"), module],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        check=False,
    )
    results: dict[str, tuple[str, str]] = {}
    current: str | None = None
    detail: list[str] = []
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            _, name, *rest = line.split()
            if name == "end" and current:
                results[current] = ("fail", "\n".join(detail))
                current, detail = None, []
            elif rest == ["pass"]:
                results[name] = ("pass", "")
            else:
                current, detail = name, []
        elif current:
            detail.append(line)
    if not results:
        results["<module>"] = ("fail", proc.stdout + proc.stderr)
    return results


class MicroPythonFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        tree = ast.parse(self.path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield MicroPythonItem.from_parent(self, name=node.name)

    def results(self) -> dict[str, tuple[str, str]]:
        cached: dict[str, tuple[str, str]] | None = getattr(self, "_results", None)
        if cached is None:
            cached = run_module(self.path.stem)
            self._results = cached
        return cached


class MicroPythonFailure(Exception):
    pass


class MicroPythonItem(pytest.Item):
    def runtest(self) -> None:
        assert isinstance(self.parent, MicroPythonFile)
        results = self.parent.results()
        if "<module>" in results:
            raise MicroPythonFailure("module failed to run:\n" + results["<module>"][1])
        if self.name not in results:
            raise MicroPythonFailure(f"{self.name} did not report a result")
        outcome, detail = results[self.name]
        if outcome != "pass":
            raise MicroPythonFailure(detail)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"[micropython] {excinfo.value}"
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"micropython: {self.name}"


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if module_path.parent == HERE and module_path.name.startswith("test_"):
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None
