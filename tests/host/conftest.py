"""Host tests import the pure firmware modules (amr.*) and the firmware test
helpers (membackend) straight from the tree."""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _path in (_TESTS.parent / "firmware", _TESTS / "firmware"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
