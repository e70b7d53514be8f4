"""Host tests import the pure firmware modules (amr.*) and the firmware test
helpers (membackend) straight from the tree, and draw property-test examples
deterministically."""

import sys
from pathlib import Path

from hypothesis import settings

_TESTS = Path(__file__).resolve().parent.parent
for _path in (_TESTS.parent / "firmware", _TESTS / "firmware"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

# Property tests draw the same examples on every run, so the suite is
# deterministic (CI judges a submission by one run); longer randomised
# campaigns belong in `make bench`.
settings.register_profile("deterministic", derandomize=True)
settings.load_profile("deterministic")
