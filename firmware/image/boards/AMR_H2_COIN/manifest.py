# ruff: noqa: F821
# mypy: ignore-errors
# (include, package and module are given by MicroPython's manifest runner.)
# Frozen modules of the AMR production image: the port's own set (_boot.py,
# flashbdev, inisetup and the rest), then the app exactly as `amr build`
# deploys it on stock MicroPython: the amr package (board.py included, which
# tools/build_image.py regenerates from the board profile first) and main.py.
# Paths are relative to this file: ../../.. is firmware/.
include("$(PORT_DIR)/boards/manifest.py")

package("amr", base_path="../../..")
module("main.py", base_path="../../..")
