# Frame sealing benchmark, run under the MicroPython unix port by
# tools/bench.py (MICROPYPATH = firmware dir, as for tools/bench_press.py):
#
#     micropython tools/bench_frame.py KEYS_HEX [CALLS] [ROUNDS]
#
# KEYS_HEX is the 56-byte Sealer key block (unit id + enc, id and ack keys).
# Prints one JSON line with: CPU time and heap allocated by CALLS calls of
# amr.frame.Sealer.seal() (one Sealer, built once, counters 0..CALLS-1), the
# same for a baseline (struct.pack of the 13-byte plaintext alone, the same
# arguments, one call each), best of ROUNDS, and the frame sealed with
# counter 0 so that tools/bench.py can check it against the host encoder.
# No thresholds here: tools/bench.py reports.
import json
import struct
import sys
from binascii import hexlify, unhexlify

from mpy_timing import best_of

from amr.frame import ALERT, Sealer

_PLAINTEXT = "<BIIBBBB"
_VERSION_KIND = 1 << 4 | ALERT
ALERT_ID = 7
BATTERY = 80
FLAGS = 0


def _seal(sealer, calls):
    seal = sealer.seal
    for counter in range(calls):
        seal(ALERT, counter, ALERT_ID, counter & 7, BATTERY, FLAGS)


def _baseline(calls):
    pack = struct.pack
    for counter in range(calls):
        pack(_PLAINTEXT, _VERSION_KIND, counter, ALERT_ID, counter & 7, BATTERY, FLAGS, 0)


def main(keys, calls, rounds):
    sealer = Sealer(keys)
    sample = sealer.seal(ALERT, 0, ALERT_ID, 0, BATTERY, FLAGS)
    seal_us, seal_alloc = best_of(rounds, _seal, sealer, calls)
    base_us, base_alloc = best_of(rounds, _baseline, calls)
    print(
        json.dumps(
            {
                "calls": calls,
                "rounds": rounds,
                "seal_us": seal_us,
                "seal_alloc_bytes": seal_alloc,
                "baseline_us": base_us,
                "baseline_alloc_bytes": base_alloc,
                "sample": {
                    "kind": ALERT,
                    "counter": 0,
                    "alert_id": ALERT_ID,
                    "attempt": 0,
                    "battery_pct": BATTERY,
                    "flags": FLAGS,
                    "frame": hexlify(sample).decode(),
                },
            }
        )
    )


if __name__ == "__main__":
    main(
        unhexlify(sys.argv[1]),
        int(sys.argv[2]) if len(sys.argv) > 2 else 2000,
        int(sys.argv[3]) if len(sys.argv) > 3 else 5,
    )
