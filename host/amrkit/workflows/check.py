"""The acceptance check before a unit is issued (`amr check`).

Every check is a row: what was measured, what was expected, pass or fail.
The unit passes only if every row passes. Over the wired link in the
store's jig:

    app         the SHA-256 of the app files, computed on the unit, against
                the release manifest
    keys        the unit proves the registry's current keys (challenge)
    records     config and counter state sound, no alert pending
    counter     far from the end of the counter space
    battery     the cell under radio load above the unit's warning level
    cell        its internal resistance, from the sag during that load
    health      no fault recorded, button open (amrkit.unit.verdict)
    press       test mode over the wire, then a real press: the unit sends a
                TEST_PRESS frame (never an alert), which the check's own
                receiver must hear, verify and acknowledge within a limit;
                its RSSI and latency are recorded; the unit must have seen
                the acknowledgement (nothing left pending)

Test mode is always ended before the check returns, pass or fail: a unit
left in it would turn a real alarm into a test press.

The report is signed and stored in the registry (a passing one moves the
unit to `checked`), whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amrkit.ble import transport_trouble
from amrkit.boards import Board
from amrkit.flashing import app_hash_on_unit
from amrkit.listen import ble_source, session
from amrkit.protocol import MAX_COUNTER, KnownUnit
from amrkit.receiver import Receiver
from amrkit.registry import Registry, State
from amrkit.unit import KeyProofError, RadioUnavailable, Unit, readout
from amrkit.unit.verdict import judge
from amrkit.unit.wired import WiredLink
from amrkit.workflows.registration import unit_on_cable

# A CR2032 is 10-20 ohm new and 50-100 near its end or cold (hardware/boards):
# above this a new unit's cell is not fit to be issued.
MAX_CELL_OHM = 40.0
# A counter this close to the end would need re-keying within the unit's life.
COUNTER_HEADROOM = 1 << 24
PRESS_LIMIT_S = 60.0
ACK_SETTLE_S = 30.0  # the unit must have taken the acknowledgement by then
# The unit has taken the acknowledgement when it goes quiet: its burst repeats
# a frame every 100 ms and its first retry comes 2 s after the burst.
QUIET_S = 4.0


@dataclass(frozen=True)
class Row:
    name: str
    passed: bool
    measured: str
    expected: str


@dataclass(frozen=True)
class Checked:
    report: dict[str, Any]
    report_id: int

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


def _row(name: str, passed: bool, measured: Any, expected: str) -> Row:
    return Row(name, bool(passed), str(measured), expected)


def judge_readout(report: dict[str, Any], board: Board) -> list[Row]:
    """The rows a wired readout decides (pure)."""
    rows = []
    state = report.get("state")
    records_ok = report.get("config") == "ok" and isinstance(state, dict)
    pending = (
        state.get("pending_alerts", 0) + state.get("pending_tests", 0)
        if isinstance(state, dict)
        else None
    )
    rows.append(
        _row(
            "records",
            records_ok and pending == 0,
            f"config {report.get('config')}, "
            + (f"{pending} pending" if pending is not None else f"state {state}"),
            "config ok, state ok, nothing pending",
        )
    )
    hwm = state.get("counter_hwm") if isinstance(state, dict) else None
    rows.append(
        _row(
            "counter",
            isinstance(hwm, int) and 0 <= hwm <= MAX_COUNTER - COUNTER_HEADROOM,
            hwm if hwm is not None else "unreadable",
            f"0 .. {MAX_COUNTER - COUNTER_HEADROOM}",
        )
    )
    loaded, sag = report.get("loaded_mv"), report.get("sag_mv")
    low = report.get("low_battery_mv") or 0
    rows.append(
        _row(
            "battery",
            isinstance(loaded, int) and loaded >= low,
            f"{loaded} mV under radio load",
            f">= {low} mV (the unit's warning level)",
        )
    )
    load_ma = board.currents_ua["scanning"] / 1000
    ohm = sag / load_ma if isinstance(sag, int) and load_ma else None
    rows.append(
        _row(
            "cell",
            ohm is not None and ohm <= MAX_CELL_OHM,
            f"{ohm:.1f} ohm ({sag} mV sag at {load_ma:.0f} mA)" if ohm is not None else "-",
            f"<= {MAX_CELL_OHM:.0f} ohm internal resistance",
        )
    )
    health = [str(r) for r in judge(report) if not r.reason.startswith(("low battery", "battery"))]
    rows.append(_row("health", not health, "; ".join(health) or "no fault, button open", "none"))
    return rows


async def _hear_test_press(
    known: KnownUnit, transport: str, limit_s: float, prompt: Callable[[str], None]
) -> dict[str, Any] | str:
    """The verified test_press event of this unit, or why there is none."""
    heard: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def emit(event: dict[str, Any]) -> None:
        if event.get("unit") != known.unit or heard.done():
            return
        if event["event"] == "test_press":
            heard.set_result(event)
        elif event["event"] == "alert":
            heard.set_result(event)  # test mode had ended: reported as a failure

    with tempfile.TemporaryDirectory(prefix="amr-check-") as tmp:
        receiver = Receiver([known], Path(tmp) / "receiver.sqlite")
        listening = asyncio.create_task(
            session(receiver, ble_source(transport=transport), emit, ack_transport=transport)
        )
        try:
            await asyncio.sleep(0.5)  # scanning before the wearer presses
            _radio_failed(listening, transport)
            started = time.monotonic()
            prompt("press the unit's button for the check: the alarm gesture (three quick taps)")
            either: set[asyncio.Future[Any]] = {heard, listening}
            await asyncio.wait(either, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
            _radio_failed(listening, transport)
            if not heard.done():
                return f"nothing heard within {limit_s:.0f} s"
            event = heard.result()
            event = {**event, "latency_s": round(time.monotonic() - started, 2)}
            await _until_quiet(receiver)  # the acknowledgement stays on air meanwhile
            return event
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listening
            receiver.close()


def _radio_failed(listening: asyncio.Task[None], transport: str) -> None:
    """Raise RadioUnavailable if the check's receiver stopped (its transport
    would not open): the press test cannot run, and must not wait for nothing."""
    if listening.done() and not listening.cancelled():
        err = listening.exception()
        if err is not None:
            raise RadioUnavailable(transport_trouble(transport, err))


async def _until_quiet(receiver: Receiver) -> None:
    """Listen (and acknowledge) until the unit has stopped sending for QUIET_S,
    at most ACK_SETTLE_S: watched over the air, not over the wire, since a
    wired session stops the unit's app (on the chip as on the twin)."""

    def heard() -> int:
        return sum(receiver.stats[k] for k in ("accepted", "duplicates", "rejected_replay"))

    started = last_change = time.monotonic()
    count = heard()
    while time.monotonic() - started < ACK_SETTLE_S:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        if heard() != count:
            count, last_change = heard(), now
        elif now - last_change >= QUIET_S:
            return


async def acceptance_check(
    port: str,
    registry: Registry,
    actor: str,
    *,
    board: Board,
    release: dict[str, Any],
    transport: str,
    press_limit_s: float = PRESS_LIMIT_S,
    prompt: Callable[[str], None] = print,
) -> Checked:
    """Run every check on the unit at `port` (see the module doc)."""
    rows: list[Row] = []
    on_unit = await asyncio.to_thread(app_hash_on_unit, port)
    rows.append(
        _row(
            "app",
            on_unit == release["app_hash"],
            on_unit[:16],
            f"{release['app_hash'][:16]} (release {release['version']})",
        )
    )
    seconds = int(min(600, press_limit_s + ACK_SETTLE_S + 30))
    async with WiredLink(port) as link:  # one jig session: each hands the app back
        unit = Unit(link)
        report = await readout(unit)
        record = unit_on_cable(registry, report)
        known = registry.keys(record.unit_id)
        try:
            await unit.prove_keys(known, record.generation)
            problem = None
        except KeyProofError as err:
            problem = str(err)
        rows.append(
            _row(
                "keys",
                problem is None,
                problem or f"generation {record.generation} proved",
                f"the registry's generation {record.generation}",
            )
        )
        rows += judge_readout(report, board)
        ready = all(r.passed for r in rows)
        if ready:
            await unit.test_mode(seconds)
    if not ready:
        # An untrusted app, wrong keys or a faulty unit: no press is asked for.
        rows.append(_row("press", False, "not run: the checks above failed", "a test press"))
        return _record(registry, actor, record.unit_id, record.generation, report, on_unit,
                       release, rows, None)  # fmt: skip

    press: dict[str, Any] | str
    try:
        press = await _hear_test_press(known, transport, press_limit_s, prompt)
    finally:
        async with WiredLink(port) as link:
            await Unit(link).test_mode(0)  # first: never left turning alarms into tests
            after = await Unit(link).info()
    if isinstance(press, str):
        rows.append(_row("press", False, press, f"a test press within {press_limit_s:.0f} s"))
    elif press["event"] != "test_press":
        rows.append(_row("press", False, "an ALERT, not a test press", "a test press"))
    else:
        state = after.get("state")
        pending = state.get("pending_tests") if isinstance(state, dict) else "unknown"
        rows.append(
            _row(
                "press",
                pending == 0,
                f"test press heard in {press['latency_s']} s at {press.get('rssi')} dBm, "
                + ("acknowledged" if pending == 0 else f"{pending} left unacknowledged"),
                f"heard, verified and acknowledged within {press_limit_s:.0f} s",
            )
        )
    heard = press if not isinstance(press, str) and press["event"] == "test_press" else None
    return _record(registry, actor, record.unit_id, record.generation, report, on_unit,
                   release, rows, heard)  # fmt: skip


def _record(
    registry: Registry,
    actor: str,
    unit_id: str,
    generation: int,
    report: dict[str, Any],
    on_unit: str,
    release: dict[str, Any],
    rows: list[Row],
    press: dict[str, Any] | None,
) -> Checked:
    """The signed report in the registry; a passing one moves the unit to checked."""
    passed = all(r.passed for r in rows)
    document = {
        "unit_id": unit_id,
        "board": report.get("board"),
        "chip": report.get("chip"),
        "mac": report.get("mac"),
        "firmware": report.get("firmware"),
        "key_generation": generation,
        "app_hash": on_unit,
        "release": {"version": release["version"], "app_hash": release["app_hash"]},
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "passed": passed,
        "checks": [asdict(r) for r in rows],
    }
    if press is not None:
        document["press"] = {"latency_s": press["latency_s"], "rssi": press.get("rssi")}
    with registry.step(actor, "check", unit_id) as step:
        report_id = step.add_report(document)
        if passed:
            step.transition(State.CHECKED, {"report": report_id})
    return Checked({**document, "report_id": report_id}, report_id)
