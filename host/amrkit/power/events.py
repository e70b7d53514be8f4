"""What each event of a unit's life costs, as time in each power state.

Measured by the twin where it can be: a virtual unit runs the real firmware
(provisioned, beating, pressed and acknowledged, as tools/bench_twin.py
does) and host/amrkit/twin/energy.py splits each boot's time over the power
states. Whatever the twin cannot run comes from the firmware's and the
workflows' own figures instead (`source` says which):

- a store check: `amr check` (workflows/check.py) holds three short jig
  sessions with the app stopped at the REPL (CPU awake): the app's hash,
  the readout, and ending test mode. Between them the app runs and the unit
  sleeps until the test press, which the twin measures as an acknowledged
  alert. The sessions' time is an estimate (JIG_SESSIONS_MS);
- a service session: connected for service mode's cap
  (firmware/amr/service_mode.py _MAX_MS), the worst case.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amrkit.boards import Board
from amrkit.paths import firmware_dir, firmware_module, platform_dir
from amrkit.power.spec import radio_timing
from amrkit.twin.energy import STATES, account
from amrkit.twin.receivers import acknowledge_alert
from amrkit.twin.unit import Boot, VirtualUnit

TWIN = "twin"
# CPU awake at the REPL through a store check's three jig sessions, in all.
# ESTIMATE: each sends a few hundred bytes of commands and replies at 115200
# baud (about 30 ms a kilobyte), hashes the app's 43 kB on the chip, or reads
# the cell under a 50 ms radio load, and ends with a soft reboot: a few
# seconds in all; taken four times over. Measure with a power profiler on the
# jig's supply through one `amr check`.
JIG_SESSIONS_MS = 20_000
_CACHE_VERSION = 3  # bump when what is measured changes
HOUR_MS = 3_600_000
# The window after a press in which the acknowledged alert is over.
_ALERT_WINDOW_MS = 10 * 60_000
# A full alert sequence for the final reserve: nobody acknowledges it for
# this long (the receiver out of range, the phone off), retried throughout.
UNACKED_MINUTES = 30
# Cover traffic is measured at the firmware's highest rate, for many sequences.
_COVER_PER_DAY = 48
_COVER_HOURS = 24  # about 48 sequences: an odd wake carrying two moves the mean little


@dataclass(frozen=True)
class EventCost:
    """One event's time in each power state (ms), and where it comes from."""

    name: str
    ms: dict[str, float]
    source: str

    def uah(self, currents_ua: dict[str, float]) -> float:
        return sum(currents_ua[s] * ms for s, ms in self.ms.items()) / HOUR_MS

    @property
    def awake_ms(self) -> float:
        return sum(ms for s, ms in self.ms.items() if s != "deep_sleep")


def _awake(board: Board, boots: list[Boot]) -> dict[str, float]:
    """Time per state of these boots, without the sleep before each."""
    ms: dict[str, float] = dict.fromkeys(STATES, 0.0)
    for boot in boots:
        one = account(board, [boot], boot.ended_ms).ms
        for state in STATES:
            if state != "deep_sleep":
                ms[state] += one[state]
    return ms


def _mean(board: Board, boots: list[Boot]) -> dict[str, float]:
    total = _awake(board, boots)
    return {s: v / len(boots) for s, v in total.items()}


def _press(unit: VirtualUnit, at_ms: int, seed: int) -> None:
    from amrkit.twin.gestures import Rng, taps, trace

    rng = Rng(seed)
    unit.press(at_ms, trace(rng, taps(rng, 3)))


_MEASURED: dict[str, dict[str, EventCost]] = {}


def measure(board: Board) -> dict[str, EventCost]:
    """The twin's figures for this board: heartbeat, alert (acknowledged),
    alert_unacked (UNACKED_MINUTES of retries) and cover (one sequence, of
    the firmware's mean length). Cached: they depend only on the firmware
    and the board's wake-to-app time, not on currents or the policy."""
    key = _cache_key(board)
    if key not in _MEASURED:
        _MEASURED[key] = _load(key) or _store(key, _measure(board))
    return _MEASURED[key]


def _cache_key(board: Board) -> str:
    """The firmware tree, the twin's platform and the board, hashed: a
    measurement kept under this key is still what the twin would measure."""
    digest = hashlib.sha256(f"{_CACHE_VERSION}|{board!r}".encode())
    for root in (firmware_dir(), platform_dir(), Path(__file__).parent.parent / "twin"):
        for path in sorted(root.rglob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:32]


def _cache_file(key: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "amr" / "power" / f"{key}.json"


def _load(key: str) -> dict[str, EventCost] | None:
    try:
        data = json.loads(_cache_file(key).read_text())
        return {name: EventCost(name, e["ms"], e["source"]) for name, e in data.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(key: str, events: dict[str, EventCost]) -> dict[str, EventCost]:
    """Keep the measurement for the next run (best effort: a read-only home
    only costs the next run the twin's few seconds)."""
    path = _cache_file(key)
    data = {name: {"ms": e.ms, "source": e.source} for name, e in events.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass
    return events


def _measure(board: Board) -> dict[str, EventCost]:
    from amrkit.receiver import Receiver
    from amrkit.twin.factory import provision

    config = firmware_module("config").DEFAULTS
    timing = radio_timing()
    out: dict[str, EventCost] = {}
    with tempfile.TemporaryDirectory(prefix="amr-power-") as tmp:
        # Hourly heartbeats, so they come quickly.
        beating = VirtualUnit(Path(tmp) / "beats", board)
        provision(beating, dict(config, heartbeat_s=3600, cover_per_day=0))
        beating.power_on()
        beats = beating.run_until(3 * HOUR_MS + 60_000)
        out["heartbeat"] = EventCost("heartbeat", _mean(board, beats), TWIN)

        # Alerts on a unit whose first heartbeat is a day away: the
        # heartbeats' drawn times fall in no alert's window.
        unit = VirtualUnit(Path(tmp) / "unit", board)
        known = provision(unit, dict(config, heartbeat_s=86400, cover_per_day=0))
        receiver = Receiver([known])
        unit.power_on()
        at = 2 * HOUR_MS + 5 * 60_000
        _press(unit, at, 1)
        first = unit.run_until(at + 1)
        if acknowledge_alert(unit, first[-1], receiver, known.unit) is None:
            raise RuntimeError("the twin's receiver verified no alert after the press")
        rest = unit.run_until(at + _ALERT_WINDOW_MS)
        out["alert"] = EventCost("alert", _awake(board, first + rest), TWIN)

        at = 3 * HOUR_MS + 5 * 60_000
        _press(unit, at, 2)
        unacked = unit.run_until(at + UNACKED_MINUTES * 60_000)
        out["alert_unacked"] = EventCost("alert_unacked", _awake(board, unacked), TWIN)

        # Cover traffic: no heartbeat in the window, so every boot is cover.
        cover_unit = VirtualUnit(Path(tmp) / "cover", board)
        provision(cover_unit, dict(config, heartbeat_s=86400, cover_per_day=_COVER_PER_DAY))
        cover_unit.power_on()
        boots = cover_unit.run_until(_COVER_HOURS * HOUR_MS)
        adv = [account(board, [b], b.ended_ms).ms["advertising"] for b in boots]
        bursts = [b for b, a in zip(boots, adv, strict=True) if a >= 0.9 * timing.burst_ms]
        retries = [b for b, a in zip(boots, adv, strict=True) if a < 0.9 * timing.burst_ms]
        if not bursts or not retries:
            raise RuntimeError("the twin ran no cover sequence")
        # Per retry, not per boot: two sequences' retries due close together
        # go out in one wake (alert.py _BATCH_MS).
        frames = sum(1 for b in retries for e in b.events if e["kind"] == "advertise")
        retry_ms = {s: v / frames for s, v in _awake(board, retries).items()}
        burst_ms = _mean(board, bursts)
        out["cover"] = EventCost(
            "cover",
            {s: burst_ms[s] + timing.cover_mean_retries * retry_ms[s] for s in STATES},
            TWIN,
        )
    return out


def event_costs(board: Board) -> dict[str, EventCost]:
    """Every event the forecast counts: the twin's, and the fallbacks."""
    return {**measure(board), **fallbacks(measure(board)["alert"])}


def fallbacks(test_press: EventCost) -> dict[str, EventCost]:
    """Events the twin cannot run, from the firmware's and workflows' figures
    (module doc); a store check adds the twin's test press (an acknowledged
    alert) to its wired session."""
    timing = radio_timing()
    store = dict(test_press.ms)
    store["cpu_active"] += JIG_SESSIONS_MS
    service = dict.fromkeys(STATES, 0.0)
    service["connected"] = timing.service_max_ms
    return {
        "store_check": EventCost(
            "store_check",
            store,
            f"fallback: {JIG_SESSIONS_MS / 1000:.0f} s in jig sessions, CPU awake (estimate);"
            " its test press from the twin",
        ),
        "service_session": EventCost(
            "service_session",
            service,
            f"fallback: {timing.service_max_ms / 60000:.0f} min connected "
            "(service_mode.py _MAX_MS, the cap)",
        ),
    }
