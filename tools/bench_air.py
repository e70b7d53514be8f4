"""Press to verified alert through receivers that listen like real ones.

    python tools/bench_air.py [--board esp32c3-coin] [--presses 200]
        [--profiles ideal,gateway,...] [--seed 1] [--firmware DIR --set burst_ms=3000]

A virtual unit runs the real firmware (as tools/bench_twin.py latency()
does): provisioned, pressed with a triple tap every 20 minutes. A receiver
with a scan profile (amrkit.twin.receivers) hears only the advertising
events that fall in its windows and are not lost; the reference Receiver is
fed those frames, at the time each is first heard. When it verifies the
alert, its acknowledgement goes on the air `processing_ms` later (unit.air)
as `amr listen --ack` puts it there: until the unit's first retry is over
(ACK_ON_AIR_MS) when the burst was heard; when only a retry was, until the
next retry (the twin runs a boot to its end before the receiver hears it,
so a hold for the rest of the retry heard would come too late), and the
unit runs boot by boot until it has heard the acknowledgement. Nothing is
dropped: a press not heard within BOUND_MS is counted, and its retries go
on until the receiver hears one (or LIMIT_MS: then it counts as never
heard, and is acknowledged out of band so that the next press starts
clean).

Figures per profile: press-to-verified and alarm-to-verified latency (p50,
p99, nearest rank), presses not heard within the bound or never, retries
per alert, and the radio time of each alert sequence (from the alarm's boot
to the boot that heard the acknowledgement) from amrkit.twin.energy.account:
ms advertising and ms scanning. The twin runs each boot to its end before
the receiver hears it, so an acknowledgement is heard at the unit's next
wake (its first retry), never within the boot that carried the alert: a
real unit that hears it during the burst sends that retry less.

`--firmware DIR` runs another firmware tree (an older schedule, say) and
`--set name=value` overrides its provisioned config.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from amrkit.ack_schedule import HOLD_S
from amrkit.boards import load_board
from amrkit.paths import firmware_dir, firmware_module
from amrkit.receiver import Receiver
from amrkit.twin.energy import account
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.platform._contract import AIR_FILE
from amrkit.twin.receivers import (
    ACK_INTERVAL_MS,
    ACK_ON_AIR_MS,
    BENCH_PROFILES,
    PROFILES,
    Profile,
    Scanner,
    Span,
    spans,
    unit_ack_scan,
)
from amrkit.twin.unit import Boot, VirtualUnit

GAP_MS = 20 * 60_000  # from one press to the next
BOUND_MS = 60_000  # an alert not verified this long after the press is late
LIMIT_MS = 15 * 60_000  # a press not heard by then is reported as never heard
RETRY_MS = 1000  # a retry's advertising window (firmware/amr/alert.py)
_ALARM = re.compile(r"amr: \[(\d+) ms\] gesture: alarm")
_ATTEMPT = re.compile(r"alert (\d+) attempt (\d+)")


def _rank(values: list[float], q: float) -> float:
    """Nearest-rank percentile; inf (never heard) sorts last."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _p(values: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        v = _rank(values, q)
        out[name] = None if math.isinf(v) else round(v, 1)
    return out


class _Listener:
    """One receiver near the unit: hears frames through a Scanner, verifies
    them, and puts an acknowledgement on the air for each new alert."""

    def __init__(self, unit: VirtualUnit, rx: Receiver, unit_id: str, profile: Profile) -> None:
        self.unit, self.rx, self.unit_id, self.profile = unit, rx, unit_id, profile
        self.scanner: Scanner | None = None
        self.alerts: dict[int, float] = {}  # alert id -> first heard (unit clock ms)

    def boot(self, boot: Boot) -> None:
        scanner = self.scanner
        if scanner is None:
            return
        heard = [(t, s) for s in spans(boot) if (t := scanner.first_heard(s)) is not None]
        for t, span in sorted(heard, key=lambda item: item[0]):
            for event in self.rx.feed(bytes.fromhex(span.data), t / 1000):
                if event["event"] != "alert" or event["alert_id"] in self.alerts:
                    continue
                alert_id = event["alert_id"]
                self.alerts[alert_id] = t
                start = math.ceil(t + self.profile.processing_ms)
                # A retry heard: on until the next one, at most HOLD_S away.
                hold = ACK_ON_AIR_MS if event["attempt"] == 0 else round(HOLD_S * 1000)
                self.unit.air(self.rx.ack_ad(self.unit_id, alert_id), start, start + hold)


def _step(unit: VirtualUnit, listener: _Listener) -> Boot | None:
    """Run the unit to its next wake; that boot, or None if nothing wakes it."""
    wake, _ = unit.next_wake()
    if wake is None:
        return None
    boots = unit.run_until(wake)
    for boot in boots:
        listener.boot(boot)
    return boots[-1] if boots else None


def run_profile(
    board_name: str,
    profile: Profile,
    presses: int,
    seed: int = 1,
    firmware: Path | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`presses` alerts through one receiver profile; figures as in the module doc."""
    board = load_board(board_name)
    press_ms: list[float] = []
    alarm_ms: list[float] = []
    retries: list[int] = []
    advertising: list[int] = []
    scanning: list[int] = []
    late = never = 0
    with tempfile.TemporaryDirectory() as tmp:
        unit = VirtualUnit(Path(tmp) / "unit", board, firmware=firmware or firmware_dir())
        known = provision(unit, config)
        rx = Receiver([known])
        listener = _Listener(unit, rx, known.unit, profile)
        unit.power_on()
        at = 0
        for n in range(presses):
            # The unit's radio reads the whole air file as it scans: only
            # the acknowledgements still on the air stay in it.
            (unit.directory / AIR_FILE).unlink(missing_ok=True)
            at = max(at + GAP_MS, unit.clock_ms + 60_000)
            rng = Rng(n)
            unit.press(at, trace(rng, taps(rng, 3)))
            listener.scanner = Scanner(profile, random.Random(f"{seed}:{profile.name}:{n}"))
            for boot in unit.run_until(at - 1):
                listener.boot(boot)
            alarm_boot: Boot | None = None
            sequence: list[Boot] = []
            alert_id: int | None = None
            acked = False
            while not acked:
                stepped = _step(unit, listener)
                if stepped is None or stepped.started_ms > at + LIMIT_MS:
                    break
                boot = stepped
                lines = "\n".join(boot.lines)
                if alarm_boot is None:
                    if _ALARM.search(lines) is None:
                        continue  # a heartbeat before the press
                    alarm_boot = boot
                    alert_id = int(_ATTEMPT.search(lines).group(1))  # type: ignore[union-attr]
                if f"alert {alert_id} attempt" in lines or boot is alarm_boot:
                    sequence.append(boot)
                acked = f"alert {alert_id} acknowledged" in lines
            if alarm_boot is None or alert_id is None:
                raise RuntimeError(f"press {n}: no alarm was recognised")
            if not acked:
                # Never heard: counted below; then acknowledged out of band,
                # so that its retries do not run into the next press.
                ack = rx.ack_ad(known.unit, alert_id)
                unit.air(ack, unit.clock_ms, unit.clock_ms + round(HOLD_S * 1000))
                for _ in range(5):
                    stepped = _step(unit, listener)
                    if stepped is None or f"alert {alert_id} acknowledged" in "\n".join(
                        stepped.lines
                    ):
                        break
            alarm = next(int(m.group(1)) for line in alarm_boot.lines if (m := _ALARM.match(line)))
            heard = listener.alerts.get(alert_id)
            if heard is None:
                never += 1
                press_ms.append(math.inf)
                alarm_ms.append(math.inf)
            else:
                press_ms.append(heard - alarm_boot.started_ms)
                alarm_ms.append(heard - alarm_boot.started_ms - alarm)
                late += heard - alarm_boot.started_ms > BOUND_MS
            sent = sum(
                1 for b in sequence for line in b.lines if f"alert {alert_id} attempt" in line
            )
            retries.append(sent - 1)
            energy = account(board, sequence, sequence[-1].ended_ms)
            advertising.append(energy.ms["advertising"])
            scanning.append(energy.ms["scanning"])
    return {
        "presses": presses,
        "profile": profile.as_dict(),
        "press_to_verified_ms": _p(press_ms),
        "alarm_to_verified_ms": _p(alarm_ms),
        "not_heard_within_bound": late + never,
        "bound_ms": BOUND_MS,
        "never_heard": never,
        "retries_per_alert_mean": round(sum(retries) / len(retries), 2),
        "advertising_ms_per_alert_mean": round(sum(advertising) / len(advertising)),
        "scanning_ms_per_alert_mean": round(sum(scanning) / len(scanning)),
    }


def ack_hearing(trials: int = 5000, seed: int = 1) -> dict[str, Any]:
    """The unit's scan (radio.py) against a phone's acknowledgement on the air
    every ACK_INTERVAL_MS: delay to hear it, and how often a 1 s retry
    misses it altogether."""
    profile = unit_ack_scan()
    delays: list[float] = []
    missed = 0
    for i in range(trials):
        rng = random.Random(f"{seed}:ack:{i}")
        scanner = Scanner(profile, rng)
        start = rng.uniform(0.0, 60_000.0)
        t = scanner.first_heard(Span(start, start + RETRY_MS, ACK_INTERVAL_MS, ""))
        if t is None:
            missed += 1
            delays.append(math.inf)
        else:
            delays.append(t - start)
    return {
        "unit_scan_window_ms": profile.window_ms,
        "unit_scan_interval_ms": profile.interval_ms,
        "ack_interval_ms": ACK_INTERVAL_MS,
        "delay_ms": _p(delays),
        "retry_misses_ack_pct": round(100 * missed / trials, 2),
    }


def figures(
    board_name: str,
    presses: int,
    profiles: tuple[str, ...] = BENCH_PROFILES,
    seed: int = 1,
    firmware: Path | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every profile, with ratios against the first (the ideal radio)."""
    results = {
        name: run_profile(board_name, PROFILES[name], presses, seed, firmware, config)
        for name in profiles
    }
    base = results[profiles[0]]["press_to_verified_ms"]
    for result in results.values():
        own = result["press_to_verified_ms"]
        result["ratio_to_" + profiles[0]] = {
            q: (round(own[q] / base[q], 2) if own[q] is not None and base[q] else None)
            for q in ("p50", "p99")
        }
    cfg = config or firmware_module("config").DEFAULTS
    return {
        "presses": presses,
        "seed": seed,
        "baseline": profiles[0],
        "schedule": {k: cfg[k] for k in ("burst_ms", "retry_first_s", "retry_max_s")},
        "profiles": results,
        "ack_hearing": ack_hearing(seed=seed),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The bench table's lines for these figures."""

    def ms(v: float | None) -> str:
        return "never" if v is None else f"{v:.0f}"

    base = result["baseline"]
    sched = result["schedule"]
    out = [
        (
            f"air: press to verified alert per receiver ({result['presses']} presses)",
            f"burst {sched['burst_ms']} ms, retries {sched['retry_first_s']}..."
            f"{sched['retry_max_s']} s",
        )
    ]
    for name, r in result["profiles"].items():
        p, a, ratio = r["press_to_verified_ms"], r["alarm_to_verified_ms"], r[f"ratio_to_{base}"]
        out.append(
            (
                f"  {name} p50 / p99",
                f"{ms(p['p50'])} / {ms(p['p99'])} ms (after the alarm {ms(a['p50'])} / "
                f"{ms(a['p99'])} ms; x{ratio['p50']} / x{ratio['p99']} {base}); "
                f"late {r['not_heard_within_bound']}, never {r['never_heard']}; "
                f"per alert {r['retries_per_alert_mean']} retries, "
                f"{r['advertising_ms_per_alert_mean']} ms adv, "
                f"{r['scanning_ms_per_alert_mean']} ms scan",
            )
        )
    ack = result["ack_hearing"]
    out.append(
        (
            "  unit hears the ack (p50 / p99; 1 s retry misses it)",
            f"{ms(ack['delay_ms']['p50'])} / {ms(ack['delay_ms']['p99'])} ms; "
            f"{ack['retry_misses_ack_pct']} % (scan {ack['unit_scan_window_ms']:.0f} ms "
            f"every {ack['unit_scan_interval_ms']:.0f} ms)",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--board", default="esp32c3-coin")
    parser.add_argument("--presses", type=int, default=200, help="presses per profile")
    parser.add_argument("--profiles", default=",".join(BENCH_PROFILES), help="baseline first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--firmware", type=Path, help="another firmware tree")
    parser.add_argument("--set", action="append", default=[], help="config override name=value")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    config = None
    if args.set:
        config = dict(firmware_module("config").DEFAULTS)
        for item in args.set:
            name, _, value = item.partition("=")
            config[name] = int(value)
    names = tuple(n for n in args.profiles.split(",") if n)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        print(f"error: unknown profile(s) {unknown}; known: {sorted(PROFILES)}", file=sys.stderr)
        return 2
    result = figures(args.board, args.presses, names, args.seed, args.firmware, config)
    width = max(len(name) for name, _ in rows(result))
    for name, value in rows(result):
        print(f"{name:<{width}}  {value}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
