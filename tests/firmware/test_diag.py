# amr.diag under the MicroPython unix port.
from amr import diag

RESET_FIELDS = (
    (diag.PWRON_RESET, "reset_power_on"),
    (diag.HARD_RESET, "reset_hard"),
    (diag.WDT_RESET, "reset_watchdog"),
    (diag.DEEPSLEEP_RESET, "reset_deepsleep"),
    (diag.SOFT_RESET, "reset_soft"),
)
RESET_NAMES = (
    "reset_power_on",
    "reset_hard",
    "reset_watchdog",
    "reset_deepsleep",
    "reset_soft",
    "reset_brownout",
)


def busy():
    """Counters with distinct values, some past 2**31 (u32 on the wire)."""
    d = diag.Diagnostics()
    for i, name in enumerate(diag.FIELDS):
        setattr(d, name, 1000 * i + 7)
    d.presses = 0xFFFFFFFF
    d.frames_sent = 0x80000001
    d.last_error = 0xBEEF
    return d


def test_reset_cause_values_match_machine():
    # MicroPython's ESP32 port (and micropython-esp32-stubs machine.pyi).
    assert diag.PWRON_RESET == 1
    assert diag.HARD_RESET == 2
    assert diag.WDT_RESET == 3
    assert diag.DEEPSLEEP_RESET == 4
    assert diag.SOFT_RESET == 5


def test_each_reset_cause_counted():
    for cause, name in RESET_FIELDS:
        d = diag.Diagnostics()
        d.count_reset(cause)
        assert d.boots == 1, name
        for other in RESET_NAMES:
            assert getattr(d, other) == (1 if other == name else 0), (name, other)


def test_brownout_counted_when_app_says_so():
    d = diag.Diagnostics()
    d.count_reset(diag.PWRON_RESET, brownout=True)
    assert d.boots == 1
    assert d.reset_brownout == 1
    assert d.reset_power_on == 0


def test_unknown_cause_counts_only_a_boot():
    d = diag.Diagnostics()
    d.count_reset(0)
    assert d.boots == 1
    for name in RESET_NAMES:
        assert getattr(d, name) == 0, name


def test_counts_accumulate_over_boots():
    d = diag.Diagnostics()
    d.count_reset(diag.PWRON_RESET)
    for _ in range(10):
        d = diag.decode(d.encode())
        d.count_reset(diag.DEEPSLEEP_RESET)
    assert (d.boots, d.reset_power_on, d.reset_deepsleep) == (11, 1, 10)


def test_error_records_code_and_boot():
    d = diag.Diagnostics()
    d.count_reset(diag.PWRON_RESET)
    d.count_reset(diag.DEEPSLEEP_RESET)
    d.error(0x0102)
    assert (d.faults, d.last_error, d.last_error_boot) == (1, 0x0102, 2)
    d.count_reset(diag.DEEPSLEEP_RESET)
    d.error(0x1_0203)  # u16 field: high bits dropped
    assert (d.faults, d.last_error, d.last_error_boot) == (2, 0x0203, 3)


def test_round_trip():
    d = busy()
    data = d.encode()
    assert isinstance(data, bytes) and len(data) == diag.SIZE
    back = diag.decode(data)
    assert back is not None
    assert back.as_dict() == dict(d.as_dict(), restored=True)
    assert back.presses == 0xFFFFFFFF and back.frames_sent == 0x80000001
    assert back.encode() == data


def test_round_trip_from_bytearray_and_memoryview():
    data = busy().encode()
    assert diag.decode(bytearray(data)).as_dict() == diag.decode(memoryview(data)).as_dict()


def test_encode_twice_gives_independent_records():
    d = diag.Diagnostics()
    first = d.encode()
    d.presses = 5
    second = d.encode()
    assert first != second
    assert diag.decode(first).presses == 0 and diag.decode(second).presses == 5


def test_counter_overflow_wraps_instead_of_raising():
    d = diag.Diagnostics()
    d.alerts = 0x1_0000_0002
    assert diag.decode(d.encode()).alerts == 2


def test_every_single_byte_corruption_detected():
    data = busy().encode()
    buf = bytearray(data)
    for i in range(len(buf)):
        for x in range(1, 256):
            buf[i] = data[i] ^ x
            assert diag.decode(buf) is None, (i, x)
        buf[i] = data[i]
    assert diag.decode(buf) is not None


def test_wrong_length_rejected():
    data = busy().encode()
    assert diag.decode(data[:-1]) is None
    assert diag.decode(data + b"\x00") is None
    assert diag.decode(b"") is None
    assert diag.decode(None) is None


def test_wrong_version_rejected_even_with_valid_crc():
    import struct
    from binascii import crc32

    buf = bytearray(busy().encode())
    buf[4] = 2
    struct.pack_into("<I", buf, diag.SIZE - 4, crc32(buf[: diag.SIZE - 4]))
    assert diag.decode(buf) is None


def test_power_loss_garbage_starts_fresh_counters_visibly():
    # What RTC memory may hold after a power loss: zeros, ones, noise.
    seed = 12345
    noise = bytearray(diag.SIZE)
    for i in range(diag.SIZE):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        noise[i] = seed >> 16 & 0xFF
    old = busy()
    for garbage in (bytes(diag.SIZE), b"\xff" * diag.SIZE, bytes(noise), b""):
        assert diag.decode(garbage) is None
        d = diag.load(garbage)
        d.count_reset(diag.PWRON_RESET)
        readout = d.as_dict()
        assert readout["restored"] is False
        assert readout["boots"] == 1 and readout["reset_power_on"] == 1
        assert readout["presses"] == 0 and readout["alerts"] == 0, readout
        assert readout != old.as_dict()


def test_load_restores_a_valid_record():
    d = diag.load(busy().encode())
    assert d.restored is True
    assert d.as_dict()["restored"] is True
    assert d.presses == 0xFFFFFFFF


def test_decode_is_also_a_static_method():
    data = busy().encode()
    assert diag.Diagnostics.decode(data).as_dict() == diag.decode(data).as_dict()
    assert diag.Diagnostics.decode(b"junk") is None


def test_error_with_explicit_boot():
    d = diag.Diagnostics()
    d.count_reset(diag.PWRON_RESET)
    d.error(7, 42)
    assert (d.faults, d.last_error, d.last_error_boot) == (1, 7, 42)


def test_as_dict_has_every_counter():
    readout = diag.Diagnostics().as_dict()
    for name in diag.FIELDS:
        assert readout[name] == 0, name
    assert readout["restored"] is False
    assert len(readout) == len(diag.FIELDS) + 1
