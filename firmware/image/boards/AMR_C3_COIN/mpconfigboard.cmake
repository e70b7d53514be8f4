# MicroPython board definition for the AMR reference button (ESP32-C3),
# built out of tree: make -C $MICROPY_DIR/ports/esp32 BOARD_DIR=<this dir>
# (tools/build_image.py). No variants: MICROPY_BOARD_VARIANT stays unset.
set(IDF_TARGET esp32c3)

# Later files override earlier ones: the port's base and BLE settings as
# ESP32_GENERIC_C3 uses them, then this board's fast-boot settings.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The app frozen in: firmware/amr and main.py, plus the port's own modules.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
