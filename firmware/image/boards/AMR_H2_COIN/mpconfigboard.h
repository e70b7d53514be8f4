// The AMR button on ESP32-H2: an ESP32-H2-MINI-1-H4S (4 MiB flash) on a
// CR2032 (hardware/boards/esp32h2-coin.toml). As ESP32_GENERIC_H2, without the
// peripherals the button has no use for.

#define MICROPY_HW_BOARD_NAME               "H2 coin board"
#define MICROPY_HW_MCU_NAME                 "ESP32-H2"

// The H2 has no Wi-Fi: as ESP32_GENERIC_H2, no WLAN and no ESP-NOW.
#define MICROPY_PY_NETWORK_WLAN             (0)
#define MICROPY_PY_ESPNOW                   (0)

#define MICROPY_HW_ENABLE_SDCARD            (0)
#define MICROPY_PY_MACHINE_I2S              (0)

// The store's jig reaches the raw REPL over the module's UART (USB-UART bridge).
#define MICROPY_HW_ENABLE_UART_REPL         (1)
