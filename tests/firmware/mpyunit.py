# Runs the test_* functions of one test module under the MicroPython unix port
# and prints one machine-readable line per test for the pytest collector
# (tests/firmware/conftest.py). Usage: micropython mpyunit.py MODULE [TEST ...]
import sys

RESULT = "@@amr-result"


def _run(module_name, wanted):
    module = __import__(module_name)
    names = [n for n in sorted(dir(module)) if n.startswith("test_")]
    if wanted:
        names = [n for n in names if n in wanted]
    failures = 0
    for name in names:
        try:
            getattr(module, name)()
        except Exception as exc:  # report every failure, keep running the rest
            failures += 1
            print(RESULT, name, "fail")
            sys.print_exception(exc)
            print(RESULT, "end")
        else:
            print(RESULT, name, "pass")
    return failures


sys.exit(1 if _run(sys.argv[1], sys.argv[2:]) else 0)
