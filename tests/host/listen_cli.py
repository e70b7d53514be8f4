"""Run `amr listen` as a user would, for the tests that need it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from amrkit.cli import main


def amr_listen(
    bundle: Path, state: Path, passphrase: str, *options: str
) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, the JSON events it printed, its stderr)."""
    result = CliRunner().invoke(
        main,
        ["listen", "--bundle", str(bundle), "--state", str(state), *options],
        env={"AMR_BUNDLE_PASSPHRASE": passphrase},
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, events, result.stderr or result.output
