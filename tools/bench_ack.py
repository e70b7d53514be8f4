"""The receiver's acknowledgement on the live twin: its time on the air per
alert, and the unit's retries until it heard it, for the earlier policy
(HOLD: two minutes after every frame, no decoys; the baseline) and the one
`amr listen --ack` uses (WINDOW: until the first retry is over, then a
retry window after each retransmission, decoys for routine frames).

    python tools/bench_ack.py [--alerts 4] [--board esp32c3-coin]

One `amr sim` radio, one virtual unit per policy, each with its own
receiver (amrkit.listen.listen with a bumble scanner and an Acker) in the
same run; every round triple-taps both units at once and waits until both
have heard their acknowledgement and the window's is off the air. Alerts
are far apart in life, so the baseline's tags are dropped after each round
(their time on the air is the schedule's: two minutes after the last frame).
An observer on the radio records what the window policy actually put on
the air. The sim's sleep runs 1000 times faster than the wall clock, so its
first retry comes right after the burst: the unit is acknowledged at its
first retry either way, and the window's time on the air is the schedule's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

from amrkit.ack_schedule import HOLD, WINDOW, AckPolicy, AckSchedule
from amrkit.acker import TURN_S, Acker
from amrkit.boards import load_board
from amrkit.listen import ble_source, listen
from amrkit.protocol import ack_ad
from amrkit.receiver import Receiver
from amrkit.twin.sim import Sim, SimUnit

POLICIES: dict[str, tuple[AckPolicy, bool]] = {"hold": (HOLD, False), "window": (WINDOW, True)}
FRAME_HEADER = bytes((0x1E, 0xFF))  # the unit's own frames


class _Recorded(AckSchedule):
    """A schedule that remembers each payload's span on the air: first
    answered, and the end of its last hold."""

    def __init__(self, policy: AckPolicy, decoys: bool) -> None:
        super().__init__(policy, decoys=decoys)
        self.spans: dict[bytes, list[float]] = {}

    def answer(self, ad: bytes, first: bool, now: float) -> bool:
        new = super().answer(ad, first, now)
        self.spans.setdefault(ad, [now, now])[1] = self.until[ad]
        return new


def _acknowledged(unit: SimUnit) -> int:
    return sum(1 for b in list(unit.unit.boots) for line in b.lines if "acknowledged by" in line)


def _retries(unit: SimUnit) -> list[int]:
    """Per acknowledged alert: retries sent before the acknowledgement stopped them."""
    lines = [line for b in list(unit.unit.boots) for line in b.lines]
    out = []
    for line in lines:
        if "acknowledged by the receiver" in line:
            alert = line.split("alert ")[1].split()[0]
            out.append(sum(1 for x in lines if f"alert {alert} attempt" in x) - 1)
    return out


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


async def _run(sim: Sim, alerts: int) -> dict[str, Any]:
    units = dict(zip(POLICIES, sim.units.values(), strict=True))
    heard: dict[bytes, list[float]] = {}  # AD -> [first, last] heard by the observer

    async def observer() -> None:
        host = await sim.radio.radio.open_host("observer")

        def on_advertisement(adv: Any) -> None:
            data = bytes(adv.data_bytes)
            if not data.startswith(FRAME_HEADER):
                heard.setdefault(data, [time.monotonic(), 0.0])[1] = time.monotonic()

        host.device.on("advertisement", on_advertisement)
        await host.device.start_scanning(filter_duplicates=False)

    await sim.radio.acall(observer())
    receivers, schedules, ackers, tasks = {}, {}, {}, []
    reported: dict[str, list[dict[str, Any]]] = {name: [] for name in POLICIES}
    for name, (policy, decoys) in POLICIES.items():
        known = units[name].known
        assert known is not None
        receivers[name] = Receiver([known])
        schedules[name] = _Recorded(policy, decoys)
        ackers[name] = Acker(sim.ble, schedules[name])
        await ackers[name].start()
        source = ble_source(transport=sim.ble)
        tasks.append(
            asyncio.create_task(
                listen(receivers[name], source, reported[name].append, acker=ackers[name])
            )
        )
    hold_spans: dict[bytes, list[float]] = {}
    try:
        await asyncio.sleep(TURN_S)
        for n in range(alerts):
            start = time.monotonic()
            for i, unit in enumerate(units.values()):
                sim.command({"cmd": "taps", "unit": unit.name, "count": 3, "seed": n * 2 + i})
            deadline = start + 3 * WINDOW.first_s
            while time.monotonic() < deadline and any(
                _acknowledged(u) <= n for u in units.values()
            ):
                await asyncio.sleep(0.1)
            # Until the window's acknowledgements are off the air.
            await asyncio.sleep(max(0.0, start + WINDOW.first_s + TURN_S - time.monotonic()))
            hold = schedules["hold"]
            hold_spans.update(hold.spans)
            hold.spans.clear()
            hold.until.clear()  # alerts are far apart: each baseline tag on its own
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for acker in ackers.values():
            await acker.close()
    out: dict[str, Any] = {"alerts": alerts}
    for name, unit in units.items():
        known = unit.known
        assert known is not None
        spans = hold_spans if name == "hold" else schedules[name].spans
        tags = {ack_ad(known.keys.ack, e["alert_id"]) for e in reported[name] if "alert_id" in e}
        acks = [end - begin for ad, (begin, end) in spans.items() if ad in tags]
        decoy_spans = [end - begin for ad, (begin, end) in spans.items() if ad not in tags]
        retries = _retries(unit)
        result: dict[str, Any] = {
            "ack_on_air_s_mean": _mean(acks),
            "retries_until_acknowledged_mean": _mean([float(r) for r in retries]),
            "acknowledged": len(retries),
            "decoys": len(decoy_spans),
            "decoy_on_air_s_mean": _mean(decoy_spans),
        }
        if name == "window":
            seen = [last - first for ad, (first, last) in heard.items() if ad in tags]
            result["ack_heard_on_air_s_mean"] = _mean(seen)
        out[name] = result
    hold_s, window_s = out["hold"]["ack_on_air_s_mean"], out["window"]["ack_on_air_s_mean"]
    out["on_air_ratio_window_to_hold"] = (
        round(window_s / hold_s, 3) if hold_s and window_s is not None else None
    )
    return out


def figures(alerts: int = 4, board: str = "esp32c3-coin") -> dict[str, Any]:
    """The figures of the module doc, as a dict."""
    with Sim(len(POLICIES), load_board(board)) as sim:
        return asyncio.run(_run(sim, alerts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=4)
    parser.add_argument("--board", default="esp32c3-coin")
    args = parser.parse_args()
    print(json.dumps(figures(args.alerts, args.board), indent=2))


if __name__ == "__main__":
    main()
