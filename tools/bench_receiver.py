"""Receiver throughput on CPython (one thread), next to bthome-ble's parser.

Frames per second verified by amrkit.receiver.Receiver holding `units` known
units, fed pre-built valid heartbeat frames: each frame comes from a unit
drawn at random, and each unit's frames carry increasing counters (in order
per unit, units interleaved). Measured with the state in SQLite ":memory:"
and in a file in a temporary directory (WAL), committed before feed()
returns as the receiver does; and, as the baseline of that durability, in a
file with the receiver's earlier policy (a commit at most every
BATCHED_FLUSH_S of the `t` passed to feed(), which is time.time() at each
frame as in `amr listen`; alerts at once).

Side by side, the same number of encrypted BTHome v2 adverts from the same
number of devices (one bindkey each) through bthome-ble's public parser,
BTHomeBluetoothDeviceData(bindkey=...).update(BluetoothServiceInfoBleak),
one parser object per device found by address, as a Bluetooth integration
holds them. Each advert carries a packet id and a battery level (the
heartbeat's content); the service infos are built before timing, as a
scanner would hand them over.

Each figure is the best of `rounds` timed passes (time.perf_counter), each
on fresh state, so counters always advance. Every frame is checked to be
accepted (the receiver's "accepted" count; bthome-ble's stored encryption
counter and decoded battery in an untimed pass), so a rate never counts
rejected frames.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from habluetooth import BluetoothServiceInfoBleak

from amrkit.protocol import Frame, Kind, KnownUnit, derive_keys, encode
from amrkit.receiver import Receiver, _Track

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
BTHOME_DEVICE_INFO = 0x41  # BTHome v2 (bits 5-7 = 2), encrypted (bit 0)
BTHOME_PACKET_ID = 0x00
BTHOME_BATTERY = 0x01
BATTERY_PCT = 80
ADVERT_INTERVAL_S = 0.001  # bthome-ble's adv time step: 1,000 adverts/s in all
_SECRET = bytes(range(32))
_SEED = 20240601


@dataclass
class _Rate:
    frames: int
    best_s: float

    @property
    def per_s(self) -> float:
        return self.frames / self.best_s


def _schedule(units: int, frames: int, seed: int) -> list[tuple[int, int]]:
    """(unit index, counter) per frame: random units, counters 0, 1, ... per unit."""
    rng = random.Random(seed)
    following = [0] * units
    out = []
    for _ in range(frames):
        unit = rng.randrange(units)
        out.append((unit, following[unit]))
        following[unit] += 1
    return out


def _best(rounds: int, setup: Callable[[], Any], run: Callable[[Any], None]) -> float:
    """Best wall time of `run(state)` over the rounds, each on a fresh setup().

    The garbage collector stays on (it is part of the cost), but each round
    starts after a full collection, so none inherits another's garbage.
    """
    best = float("inf")
    for _ in range(rounds):
        state = setup()
        gc.collect()
        t0 = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - t0)
    return best


# -- amrkit.receiver --------------------------------------------------------

BATCHED_FLUSH_S = 0.5


class _BatchedReceiver(Receiver):
    """The receiver with its earlier commit policy: the units a frame moved
    are written and committed at most every BATCHED_FLUSH_S (a new alert at
    once), so a kill could lose that much progress."""

    _last_commit = float("-inf")
    _dirty: set[str] | None = None

    def _commit(self, track: _Track, t: float, new_alert: dict[str, Any] | None = None) -> None:
        if self._dirty is None:
            self._dirty = set()
        self._dirty.add(track.known.unit)
        if new_alert is None and t - self._last_commit < BATCHED_FLUSH_S:
            return
        for unit in self._dirty:
            tr = self._tracks[unit]
            self._db.execute(
                "INSERT OR REPLACE INTO unit_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    unit,
                    tr.hwm,
                    tr.newest_alert,
                    tr.last_seen,
                    int(tr.supervised),
                    *(tr.anchor or (None, None)),
                ),
            )
        self._dirty.clear()
        super()._commit(track, t, new_alert)
        self._last_commit = t


def _receiver_rate(
    known: list[KnownUnit],
    ads: list[bytes],
    rounds: int,
    db: Callable[[], str],
    kind: type[Receiver] = Receiver,
) -> _Rate:
    receivers: list[Receiver] = []

    def setup() -> Receiver:
        receiver = kind(known, db())
        receivers.append(receiver)
        return receiver

    def run(receiver: Receiver) -> None:
        feed = receiver.feed
        clock = time.time
        for ad in ads:
            feed(ad, clock())

    try:
        best = _best(rounds, setup, run)
        for receiver in receivers:
            if receiver.stats["accepted"] != len(ads):
                raise RuntimeError(f"receiver accepted {dict(receiver.stats)} of {len(ads)}")
    finally:
        for receiver in receivers:
            receiver.close()
    return _Rate(len(ads), best)


# -- bthome-ble ---------------------------------------------------------------


def _bthome_adverts(
    devices: int, schedule: list[tuple[int, int]]
) -> tuple[list[bytes], list[str], list[BluetoothServiceInfoBleak]]:
    """Bindkeys, addresses and one service info per frame of the schedule."""
    rng = random.Random(_SEED + 1)
    macs = [bytes((0xA4, 0xC1)) + rng.randbytes(4) for _ in range(devices)]
    keys = [rng.randbytes(16) for _ in range(devices)]
    ciphers = [AESCCM(key, tag_length=4) for key in keys]
    addresses = [":".join(f"{b:02X}" for b in mac) for mac in macs]
    ble_devices = [BLEDevice(address, None, None) for address in addresses]
    infos = []
    for i, (device, counter) in enumerate(schedule):
        # BTHome v2 encryption: nonce = MAC (6) + UUID16 LE (d2 fc) + device
        # info byte + counter (4, LE); MIC 4 bytes; counters start at 1.
        count = struct.pack("<I", counter + 1)
        nonce = macs[device] + b"\xd2\xfc" + bytes((BTHOME_DEVICE_INFO,)) + count
        plain = bytes((BTHOME_PACKET_ID, counter & 0xFF, BTHOME_BATTERY, BATTERY_PCT))
        sealed = ciphers[device].encrypt(nonce, plain, None)
        service_data = bytes((BTHOME_DEVICE_INFO,)) + sealed[:-4] + count + sealed[-4:]
        address = addresses[device]
        infos.append(
            BluetoothServiceInfoBleak(
                name=address,
                address=address,
                rssi=-60,
                manufacturer_data={},
                service_data={BTHOME_UUID: service_data},
                service_uuids=[BTHOME_UUID],
                source="bench",
                device=ble_devices[device],
                advertisement=None,
                connectable=False,
                time=1000.0 + i * ADVERT_INTERVAL_S,
                tx_power=None,
            )
        )
    return keys, addresses, infos


def _bthome_parsers(
    keys: list[bytes], addresses: list[str]
) -> dict[str, BTHomeBluetoothDeviceData]:
    return {
        address: BTHomeBluetoothDeviceData(bindkey=key)
        for address, key in zip(addresses, keys, strict=True)
    }


def _bthome_check(
    keys: list[bytes],
    addresses: list[str],
    infos: list[BluetoothServiceInfoBleak],
    schedule: list[tuple[int, int]],
) -> None:
    """Untimed: every advert decrypts and decodes to the battery level sent."""
    parsers = _bthome_parsers(keys, addresses)
    for info, (_, counter) in zip(infos, schedule, strict=True):
        parser = parsers[info.address]
        update = parser.update(info)
        battery = [v.native_value for k, v in update.entity_values.items() if k.key == "battery"]
        if parser.encryption_counter != counter + 1 or battery != [BATTERY_PCT]:
            raise RuntimeError(f"bthome-ble did not accept the advert of {info.address}")


def _bthome_rate(
    keys: list[bytes],
    addresses: list[str],
    infos: list[BluetoothServiceInfoBleak],
    schedule: list[tuple[int, int]],
    rounds: int,
) -> _Rate:
    last = {addresses[device]: counter + 1 for device, counter in schedule}
    runs: list[dict[str, BTHomeBluetoothDeviceData]] = []

    def setup() -> dict[str, BTHomeBluetoothDeviceData]:
        parsers = _bthome_parsers(keys, addresses)
        runs.append(parsers)
        return parsers

    def run(parsers: dict[str, BTHomeBluetoothDeviceData]) -> None:
        for info in infos:
            parsers[info.address].update(info)

    best = _best(rounds, setup, run)
    for parsers in runs:  # each device ended on its last counter: none dropped at the end
        for address, counter in last.items():
            if parsers[address].encryption_counter != counter:
                raise RuntimeError(f"bthome-ble dropped adverts of {address}")
    return _Rate(len(infos), best)


def figures(units: int, frames: int, rounds: int) -> dict[str, Any]:
    """Frames/s of the receiver (memory and file state) and of bthome-ble."""
    unit_ids = [struct.pack(">Q", 0xA3E0_0000_0000_0000 + n) for n in range(units)]
    keys = [derive_keys(_SECRET, unit_id) for unit_id in unit_ids]
    known = [KnownUnit(unit_id.hex(), k, 3600) for unit_id, k in zip(unit_ids, keys, strict=True)]
    schedule = _schedule(units, frames, _SEED)
    ads = [
        encode(keys[unit], Frame(Kind.HEARTBEAT, counter, battery_pct=BATTERY_PCT))
        for unit, counter in schedule
    ]

    memory = _receiver_rate(known, ads, rounds, lambda: ":memory:")
    with tempfile.TemporaryDirectory() as tmp:
        files = iter(range(2 * rounds))

        def new_file() -> str:
            return str(Path(tmp) / f"state{next(files)}.sqlite")

        on_disk = _receiver_rate(known, ads, rounds, new_file)
        batched = _receiver_rate(known, ads, rounds, new_file, _BatchedReceiver)

    bt_keys, addresses, infos = _bthome_adverts(units, schedule)
    _bthome_check(bt_keys, addresses, infos, schedule)
    bthome = _bthome_rate(bt_keys, addresses, infos, schedule, rounds)

    return {
        "units": units,
        "frames": frames,
        "rounds": rounds,
        "frames_per_unit_max": max(counter for _, counter in schedule) + 1,
        "receiver_memory_frames_per_s": round(memory.per_s),
        "receiver_file_frames_per_s": round(on_disk.per_s),
        "receiver_file_batched_frames_per_s": round(batched.per_s),
        "receiver_file_to_batched_ratio": round(on_disk.per_s / batched.per_s, 2),
        "bthome_devices": units,
        "bthome_frames_per_s": round(bthome.per_s),
        "receiver_memory_to_bthome_ratio": round(memory.per_s / bthome.per_s, 2),
        "receiver_file_to_bthome_ratio": round(on_disk.per_s / bthome.per_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(figures(args.units, args.frames, args.rounds), indent=1))


if __name__ == "__main__":
    main()
