// The AMR button on ESP32-C6: an ESP32-C6-MINI-1-N4 (4 MiB flash) on a CR2032
// (hardware/boards/esp32c6-coin.toml). As ESP32_GENERIC_C6, without the
// peripherals the button has no use for.

#define MICROPY_HW_BOARD_NAME               "C6 coin board"
#define MICROPY_HW_MCU_NAME                 "ESP32C6"

#define MICROPY_HW_ENABLE_SDCARD            (0)
#define MICROPY_PY_MACHINE_I2S              (0)

// The store's jig reaches the raw REPL over the module's UART (USB-UART bridge).
#define MICROPY_HW_ENABLE_UART_REPL         (1)
