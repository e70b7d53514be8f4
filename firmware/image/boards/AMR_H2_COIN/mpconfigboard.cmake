# MicroPython board definition for the AMR button on ESP32-H2, built out of
# tree: make -C $MICROPY_DIR/ports/esp32 BOARD_DIR=<this dir>
# (tools/build_image.py). No variants: MICROPY_BOARD_VARIANT stays unset.
set(IDF_TARGET esp32h2)

# Later files override earlier ones: the port's settings as ESP32_GENERIC_H2
# uses them (base; RISC-V size optimisation; the H2's: 802.15.4 off, SPI
# flash driver in ROM; BLE), then this board's fast-boot settings.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.riscv
    boards/sdkconfig.h2
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The app frozen in: firmware/amr and main.py, plus the port's own modules.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
