# Numbers the MicroPython ESP32 port defines, and the app's own control
# point, that the app, the chip emulations (amrkit/twin/platform, under
# MicroPython) and the host (under CPython) must agree on. One module for
# all of them: the firmware and the emulations import it as amr.contract,
# the host through amrkit.paths.firmware_module("contract").
# tests/host/test_platform_signatures.py checks every chip value against the
# documentation in micropython-esp32-stubs.
from amr.compat import const

# bluetooth.BLE.irq() event codes.
IRQ_CENTRAL_CONNECT = const(1)
IRQ_CENTRAL_DISCONNECT = const(2)
IRQ_GATTS_WRITE = const(3)
IRQ_SCAN_RESULT = const(5)
IRQ_ENCRYPTION_UPDATE = const(28)
IRQ_GET_SECRET = const(29)
IRQ_SET_SECRET = const(30)
IRQ_PASSKEY_ACTION = const(31)

# Scan result advertising types.
ADV_IND = const(0)
ADV_NONCONN_IND = const(3)

# Characteristic flags for gatts_register_services().
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)
FLAG_READ_ENCRYPTED = const(0x0200)
FLAG_READ_AUTHENTICATED = const(0x0400)
FLAG_READ_AUTHORIZED = const(0x0800)
FLAG_WRITE_ENCRYPTED = const(0x1000)
FLAG_WRITE_AUTHENTICATED = const(0x2000)
FLAG_WRITE_AUTHORIZED = const(0x4000)

# Pairing: gap_passkey() actions, config(io=...) capabilities, secret types.
PASSKEY_ACTION_DISPLAY = const(3)
IO_CAPABILITY_DISPLAY_ONLY = const(0)
SECRET_PEER = const(2)

# config(addr_mode=...): own address types.
ADDR_PUBLIC = const(0)
ADDR_RANDOM = const(1)
ADDR_RPA = const(2)
ADDR_NRPA = const(3)

# machine.reset_cause() values.
PWRON_RESET = const(1)
HARD_RESET = const(2)  # also machine.reset(), a panic and the EN pin
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)  # soft reboot of the interpreter (Ctrl-D, machine.soft_reset)

# The service commands' control point (amr/gatt.py): its service and
# characteristic, and the header byte of each reply chunk (the chunk's index,
# with CHUNK_LAST set on the last one).
CONTROL_SERVICE_UUID = "d05e9433-7578-40d1-ae3e-eb7b448e19f3"
CONTROL_POINT_UUID = "b1baef5a-21b3-4e7f-8662-1cfe050d7103"
CHUNK_LAST = const(0x80)

# machine.wake_reason() values (ESP-IDF's esp_sleep_wakeup_cause_t).
EXT0_WAKE = const(2)
EXT1_WAKE = const(3)
TIMER_WAKE = const(4)
TOUCHPAD_WAKE = const(5)
ULP_WAKE = const(6)
GPIO_WAKE = const(7)  # how the C3 reports a wake_on_gpio() wake

# Service commands that run over the wired link only (the store's jig), never
# over the air: amr/commands.py marks them in its table, the BLE control
# point refuses them, and the host's BleLink never sends them.
WIRED_ONLY = ("provision", "service", "test_mode", "wipe")
# Separates a command's name from its argument (raw bytes) on the control point.
ARG_SEPARATOR = const(0)
