# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the pinned toolchain first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUBS := $(VENV)/mpy-stubs
BOARD ?= esp32c3-coin
STAMP := $(VENV)/.installed

.PHONY: all demo test lint typecheck firmware image bench clean

all: test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The MicroPython stubs shadow CPython's stdlib names, so they live apart
	# from the host environment and are used only to type-check the firmware.
	$(BIN)/pip install --quiet -c constraints.txt --target $(STUBS) --no-deps \
		micropython-esp32-stubs micropython-stdlib-stubs
	touch $@

demo: $(STAMP)
	$(BIN)/amr demo --board $(BOARD)
	$(BIN)/amr demo --store --board $(BOARD)

test: $(STAMP) lint typecheck
	# Test files run on three workers, each file whole on one (its fixtures,
	# a fleet of virtual units say, are made once). Three on two cores: the
	# suite mostly waits on virtual units running in real time (about one
	# core busy on average), so a third worker fills the waits. The long
	# files go first (tests/host/conftest.py), not xdist's most-tests-first.
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --config-file tools/mypy-firmware.ini

firmware: $(STAMP)
	$(BIN)/amr build --board $(BOARD)

# The production image: MicroPython built with the app frozen in and fast-boot
# settings (firmware/image/); needs $MICROPY_DIR and ESP-IDF, says how if absent.
image: $(STAMP)
	$(BIN)/python tools/build_image.py --board $(BOARD)

bench: $(STAMP)
	$(BIN)/python tools/bench.py --board $(BOARD) --out build/bench.json

clean:
	rm -rf build $(VENV)
