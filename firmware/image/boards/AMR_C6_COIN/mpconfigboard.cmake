# MicroPython board definition for the AMR button on ESP32-C6, built out of
# tree: make -C $MICROPY_DIR/ports/esp32 BOARD_DIR=<this dir>
# (tools/build_image.py). No variants: MICROPY_BOARD_VARIANT stays unset.
set(IDF_TARGET esp32c6)

# Later files override earlier ones: the port's base and BLE settings as
# ESP32_GENERIC_C6 uses them (not its own sdkconfig.board, which moves the
# console to USB Serial/JTAG), then this board's fast-boot settings.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The app frozen in: firmware/amr and main.py, plus the port's own modules.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
