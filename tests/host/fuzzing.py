"""The fuzz harness (tools/fuzz_harness.py) that tools/bench_fuzz.py's long
campaign uses too, for the test_fuzz_* tests."""

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import fuzz_harness as fh  # noqa: E402

__all__ = ["fh"]
