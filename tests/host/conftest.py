"""Host tests import the pure firmware modules (amr.*) and the firmware test
helpers (membackend) straight from the tree, and draw property-test examples
deterministically."""

import sys
from pathlib import Path

import pytest
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


# The files that take half a minute or more of one worker (pytest
# --durations=0 on a fresh clone), longest first. `make test` hands files to
# its workers in collection order (--no-loadscope-reorder), so these start
# first and no long file is left running alone at the end while the other
# workers sit idle.
LONG_FILES = (
    "host/test_service_ble.py",
    "host/test_pairing_refusals.py",
    "host/test_bench.py",
    "host/test_sim.py",
    "host/test_store.py",
    "host/test_demo.py",
    "host/test_privacy_observer.py",
    "host/test_virtual_serial.py",
    "host/test_power_cuts.py",
    "host/test_press_app.py",
    "host/test_commands.py",
    "host/test_flash.py",
    "host/test_ack_air.py",
    "host/test_twin_strict.py",
    "host/test_bad_input_cli.py",
    "host/test_twin_cycles.py",
    "host/test_jig_session.py",
    "host/test_air_load.py",
    "host/test_registry_cli.py",
    "host/test_pair.py",
    "host/test_provisioning.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(_TESTS).as_posix(), len(rank)))
