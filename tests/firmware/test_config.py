# amr.config under the MicroPython unix port: ranges, cross-field rules,
# payload size and version, round trip.
import struct

from amr.config import (
    CONFIG_SIZE,
    DEFAULTS,
    FIELDS,
    RULES,
    VERSION,
    decode_config,
    encode_config,
    validate,
)
from amr.store import StoreFault


def fault_reason(fn, *args):
    try:
        fn(*args)
    except StoreFault as e:
        assert str(e).startswith(e.reason)
        assert "provision" in str(e)
        return e.reason
    raise AssertionError(f"no StoreFault from {fn!r}")


def with_(**changes):
    cfg = dict(DEFAULTS)
    cfg.update(changes)
    return cfg


def raw_payload(cfg, version=VERSION):
    """A payload packed without validation, as a corrupt or hostile store might hold."""
    fmt = "<B" + "".join(code for _, code, _, _ in FIELDS)
    return struct.pack(fmt, version, *[cfg[name] for name, _, _, _ in FIELDS])


def test_tables_are_consistent():
    names = [name for name, _, _, _ in FIELDS]
    assert len(names) == 17
    assert sorted(names) == sorted(DEFAULTS)
    for name, code, low, high in FIELDS:
        assert low <= DEFAULTS[name] <= high, name
        struct.pack("<" + code, high)  # the code holds the whole range
    for a, op, b in RULES:
        assert a in DEFAULTS and b in DEFAULTS and op in ("<", "<=", ">")
    assert len(RULES) == 6


def test_defaults_round_trip():
    payload = encode_config(DEFAULTS)
    assert len(payload) == CONFIG_SIZE
    assert payload[0] == VERSION == 1
    assert decode_config(payload) == DEFAULTS
    assert decode_config(bytearray(payload)) == DEFAULTS


def test_field_order_is_the_wire_order():
    payload = encode_config(DEFAULTS)
    assert payload[1:3] == struct.pack("<H", 1500)  # hold_ms first
    assert payload[-3:-1] == struct.pack("<H", DEFAULTS["low_battery_mv"])
    assert payload[-1] == 0  # cover_per_day last


def test_range_bounds_round_trip():
    for name, _, low, high in FIELDS:
        for value in (low, high):
            cfg = with_(**{name: value})
            try:
                validate(cfg)
            except StoreFault:
                continue  # the bound breaks a cross rule with a default; covered below
            assert decode_config(encode_config(cfg)) == cfg


def test_every_field_out_of_range():
    for name, _, low, high in FIELDS:
        for value in (low - 1, high + 1):
            if value < 0:
                continue
            expected = f"config field {name}={value} out of range {low}..{high}"
            assert fault_reason(encode_config, with_(**{name: value})) == expected
            assert fault_reason(decode_config, raw_payload(with_(**{name: value}))) == expected


def test_spec_example_reason():
    assert (
        fault_reason(encode_config, with_(hold_ms=99999))
        == "config field hold_ms=99999 out of range 800..5000"
    )


def test_every_cross_rule():
    # One config breaking exactly each rule while every field is in range.
    breaking = (
        (with_(multi_window_ms=2500, service_pause_min_ms=2500), RULES[0]),
        (with_(service_pause_min_ms=6000, service_pause_max_ms=6000), RULES[1]),
        (with_(service_pair_ms=1000, multi_window_ms=1000, service_pause_min_ms=1200), RULES[2]),
        (with_(retry_first_s=30, retry_max_s=29), RULES[3]),
        (with_(low_battery_mv=2200, battery_floor_mv=2200), RULES[4]),
    )
    for cfg, (a, op, b) in breaking:
        reason = fault_reason(encode_config, cfg)
        assert reason.startswith(f"config rule {a} {op} {b} broken"), reason
        assert fault_reason(decode_config, raw_payload(cfg)) == reason
    # min_press_ms < hold_ms cannot break within the ranges; check the rule itself.
    bad = with_(min_press_ms=300, hold_ms=300)
    try:
        validate(bad)
    except StoreFault as e:
        assert "hold_ms" in e.reason  # the range check fires first
    else:
        raise AssertionError("no fault")


def test_rules_at_their_edges_pass():
    validate(with_(multi_window_ms=2499, service_pause_min_ms=2500))
    validate(with_(service_pause_min_ms=5999, service_pause_max_ms=6000))
    validate(with_(retry_first_s=30, retry_max_s=30))
    validate(with_(low_battery_mv=2201, battery_floor_mv=2200))


def test_missing_unknown_and_non_int_fields():
    cfg = dict(DEFAULTS)
    del cfg["burst_ms"]
    assert fault_reason(encode_config, cfg) == "config field burst_ms missing"
    assert fault_reason(encode_config, with_(hold_msec=1500)) == "config field hold_msec unknown"
    assert "hold_ms" in fault_reason(encode_config, with_(hold_ms="1500"))
    assert "hold_ms" in fault_reason(encode_config, with_(hold_ms=1500.0))
    assert "heartbeat_s" in fault_reason(encode_config, with_(heartbeat_s=True))


def test_truncated_oversized_and_versioned_payloads():
    payload = encode_config(DEFAULTS)
    for n in range(1, len(payload)):
        reason = fault_reason(decode_config, payload[:n])
        assert reason == f"config length {n}, expected {CONFIG_SIZE}"
    assert fault_reason(decode_config, b"") == f"config length 0, expected {CONFIG_SIZE}"
    assert f"length {CONFIG_SIZE + 1}" in fault_reason(decode_config, payload + b"\x00")
    assert fault_reason(decode_config, b"\x02" + payload[1:]) == "config version 2 not supported"
    assert fault_reason(decode_config, b"\x00" * 200) == "config version 0 not supported"


def test_garbage_payload_is_a_fault_not_a_config():
    assert "out of range" in fault_reason(decode_config, b"\x01" + b"\xff" * (CONFIG_SIZE - 1))
    assert "out of range" in fault_reason(decode_config, b"\x01" + b"\x00" * (CONFIG_SIZE - 1))
