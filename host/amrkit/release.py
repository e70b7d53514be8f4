"""The release manifest of a built app bundle, and the app hash a unit is checked by.

`amr build` writes ``build/<board>/release.json`` next to the bundle
(``build/<board>/app``): the app's version (firmware/amr/version.py), the
SHA-256 of each file, and one app hash over them. Deploying copies the
manifest to the unit as ``/release.json``; `amr flash` verifies the files on
the unit against it and `amr check` compares a unit's app hash with it.

The app hash is the SHA-256 of the lines ``<path>\\0<sha256 hex>\\n`` in path
order (POSIX paths relative to the bundle root), so a unit can compute it
from its files and nothing else.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amrkit.paths import firmware_dir

RELEASE_FILE = "release.json"  # beside the bundle on the host, at / on a unit
VERSION_MODULE = Path("amr") / "version.py"


def app_hash(files: Mapping[str, str]) -> str:
    """One hash over a bundle's files: {relative path: sha256 hex} -> sha256 hex."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{files[path]}\n".encode())
    return digest.hexdigest()


def file_hashes(app_dir: Path) -> dict[str, str]:
    """SHA-256 of each file of a bundle, by POSIX path relative to it."""
    return {
        path.relative_to(app_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(app_dir.rglob("*"))
        if path.is_file()
    }


def app_version(firmware: Path | None = None) -> str:
    """VERSION from the firmware tree's amr/version.py (read, not imported)."""
    source = ((firmware or firmware_dir()) / VERSION_MODULE).read_text()
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "VERSION" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise ValueError(f"{VERSION_MODULE} has no VERSION = '...' line")


def release_manifest(app_dir: Path, version: str | None = None) -> dict[str, Any]:
    """The manifest of a built bundle: version, each file's SHA-256, the app hash."""
    files = file_hashes(Path(app_dir))
    return {
        "version": version or app_version(),
        "files": files,
        "app_hash": app_hash(files),
    }


def manifest_path(app_dir: Path) -> Path:
    return Path(app_dir).parent / RELEASE_FILE


def write_release_manifest(app_dir: Path) -> Path:
    """Write release.json next to the bundle; returns its path."""
    path = manifest_path(app_dir)
    path.write_text(json.dumps(release_manifest(app_dir), indent=2, sort_keys=True) + "\n")
    return path


def read_release_manifest(app_dir: Path) -> dict[str, Any]:
    """The manifest `amr build` wrote next to a bundle (made now if it is missing)."""
    path = manifest_path(app_dir)
    if not path.exists():
        return release_manifest(app_dir)
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def version_key(version: str) -> tuple[int, ...]:
    """A dotted version as numbers for ordering ("0.10.0" after "0.9.1");
    anything after the numbers (a suffix) is ignored."""
    parts: list[int] = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
