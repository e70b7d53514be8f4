# What the twin's supervisor (amrkit/twin/unit.py), the chip emulations in
# this directory and the radio peer (amrkit/twin/radio_peer) must agree on:
# the unit's files and their keys, how a run of the firmware ends, and the
# wire operations between the bluetooth emulation and the radio peer. The
# emulations import it as _contract (this directory is on their
# MICROPYPATH), the host as amrkit.twin.platform._contract. The chip's own
# numbers (IRQ codes, reset causes...) are firmware/amr/contract.py.
# tests/host/test_twin_contract.py checks that every side uses these names.

# Where the supervisor tells the emulations the unit's directory.
DIR_ENV = "AMR_TWIN_DIR"
# Set for the serial REPL's process: it is not a boot the supervisor waits
# on, so a reset there (a brownout under a reading) ends it without exit.json.
REPL_ENV = "AMR_TWIN_REPL"

# Files in the unit's directory.
UNIT_FILE = "unit.json"  # the supervisor's, read at boot and again while awake
EXIT_FILE = "exit.json"  # how the run ended, written as the process ends
EVENTS_FILE = "events.jsonl"  # what the unit did, one event a line
AIR_FILE = "air.jsonl"  # what others advertise near the unit
NVS_FILE = "nvs.json"  # flash: {namespace: {key: {NVS_BLOB: hex} or {NVS_I32: n}}}
RTC_FILE = "rtc.bin"  # RTC memory: kept in deep sleep, lost with power

# unit.json, written before each boot.
CLOCK_MS = "clock_ms"  # the RTC at the wake (also in exit.json: at the end)
BOOT_MS = "boot_ms"  # wake to app
RESET_CAUSE = "reset_cause"
WAKE_REASON = "wake_reason"
SAMPLES = "samples"  # [[t_ms, pressed], ...]; updated while awake in real time
BUTTON_PIN = "button_pin"
ACTIVE_LOW = "active_low"
MAC = "mac"  # hex
COMMITS = "commits"  # NVS commits in the unit's life (also in exit.json)
CUT_AT_COMMIT = "cut_at_commit"  # power goes at this commit...
CUT_AFTER = "cut_after"  # ...after it is written (True) or before
CUT_AT_MS = "cut_at_ms"  # power goes when the RTC reaches this, awake
NVS_FULL = "nvs_full"  # the flash has no room left: every NVS commit fails
RADIO = "ble"  # "HOST:PORT" of the radio peer, or None: no radio
HANG_AT_MS = "hang_at_ms"  # an injected hang; may be set while awake
REALTIME = "realtime"  # awake time follows the wall clock
SPAWN_WALL_MS = "spawn_wall_ms"  # the wall clock when the process started
# The RTC as the supervisor runs it, for the serial REPL (which outlives the
# boots): [wall ms since the epoch, RTC ms then, RTC ms per wall ms]; the
# supervisor renews it when the unit sleeps (fast-forwarded) or wakes.
RTC_ANCHOR = "rtc_anchor"
# The supervisor's clock when the cell last went in: the RTC counter the
# firmware reads (time.time_ns) starts again from 0 at a power-on, as the
# chip's does; deep sleep, resets and brownouts keep it running.
RTC_EPOCH_MS = "rtc_epoch_ms"
# The cell, updated while awake: ADC readings by what the chip draws,
# {draw: {pin: uV}}, its voltage under the radio, and where it browns out.
ADC_UV = "adc_uv"
RADIO_MV = "radio_mv"
BROWNOUT_MV = "brownout_mv"
UNIT_KEYS = (
    CLOCK_MS,
    BOOT_MS,
    RESET_CAUSE,
    WAKE_REASON,
    SAMPLES,
    BUTTON_PIN,
    ACTIVE_LOW,
    MAC,
    COMMITS,
    CUT_AT_COMMIT,
    CUT_AFTER,
    CUT_AT_MS,
    NVS_FULL,
    RADIO,
    HANG_AT_MS,
    REALTIME,
    SPAWN_WALL_MS,
    RTC_ANCHOR,
    RTC_EPOCH_MS,
    ADC_UV,
    RADIO_MV,
    BROWNOUT_MV,
)

# What the chip draws from the cell (board profile power states): the keys of ADC_UV.
CPU_ACTIVE = "cpu_active"
ADVERTISING = "advertising"
SCANNING = "scanning"
CONNECTED = "connected"
DRAWS = (CPU_ACTIVE, ADVERTISING, SCANNING, CONNECTED)

# exit.json: CLOCK_MS and COMMITS, and
EXIT = "exit"  # one of the codes below
SLEEP_MS = "sleep_ms"  # deepsleep()'s timer, or None
WAKE_GPIO = "wake_gpio"  # esp32.wake_on_gpio()'s [pins, level], or None
RESET = "reset"  # machine.reset()
EXIT_KEYS = (CLOCK_MS, COMMITS, EXIT, SLEEP_MS, WAKE_GPIO, RESET)

# How a run ends (the process's exit status and exit.json's EXIT).
EXIT_SLEEP = 0  # deepsleep(): the supervisor wakes the unit again
EXIT_POWER_CUT = 3  # an injected power cut
EXIT_BROWNOUT = 4  # the cell sagged under the radio's current: the chip resets
EXIT_WATCHDOG = 5  # the app stopped feeding machine.WDT: the chip resets

# nvs.json entries: the supervisor writes a unit's keys as the factory does.
NVS_BLOB = "blob"
NVS_I32 = "i32"

# air.jsonl: one item a line, hex advertising data heard between two clock times.
AIR_FROM = "from"
AIR_TO = "to"
AIR_AD = "ad"

# The bluetooth emulation's calls to the radio peer (the "op" of a JSON line).
OP_ACTIVE = "active"
OP_RPA = "rpa"
OP_SECURITY = "security"
OP_ADDRESS = "address"
OP_REGISTER = "register"
OP_WRITE = "write"
OP_NOTIFY = "notify"
OP_ADVERTISE = "advertise"
OP_SCAN = "scan"
OP_DISCONNECT = "disconnect"
OP_PASSKEY = "passkey"
OP_REPLY = "reply"  # the firmware's answer to an IRQ the peer asked about
