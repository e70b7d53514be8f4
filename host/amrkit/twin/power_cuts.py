"""Power cuts at any moment of a unit's life, and what must hold through them.

A campaign runs one twin unit for many cuts. Each round it may press the
alarm, then pulls the cell either at an NVS commit (before or after the
write lands) or at a random instant, awake or asleep, and puts a cell back
after a random time, sometimes pulling it again during that very boot. A
receiver that hears every frame verifies them and acknowledges each alert,
so the unit's pending list drains as it would in use. At the end the cell
stays in for long enough for every pending alert to be retried.

What must hold (docs/reliability.md):
  - no frame counter is ever used twice (a reused counter reuses a CCM nonce);
  - every alert the unit reported persisted reaches the receiver, and no
    alert reaches it that was not pressed;
  - the stored state is always readable: no boot reports a fault.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amrkit.boards import Board, load_board
from amrkit.paths import firmware_module
from amrkit.protocol import KnownUnit, rid
from amrkit.receiver import Receiver
from amrkit.twin.factory import provision
from amrkit.twin.gestures import Rng, taps, trace
from amrkit.twin.receivers import acknowledge_alert
from amrkit.twin.unit import Boot, VirtualUnit

ROUND_MS = 30_000  # how far ahead a round's cut may fall
SETTLE_MS = 40 * 60_000  # the last cell stays in this long: every pending alert retried
# What the firmware logs once an alert is in flash (amr/app.py).
PERSISTED = re.compile(r"\] alert (\d+) reserved and persisted$")
# A fifth pending alert pushes the second oldest out (docs/protocol.md 6.2).
EVICTED = re.compile(r"\] alert (\d+) no longer retried")


@dataclass
class CutReport:
    cuts: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # commit-before/after, awake, asleep
    boots: int = 0
    presses: int = 0  # alarm gestures pressed while the unit was powered
    # alert ids the unit logged as persisted, or that its flash held as pending after a cut
    persisted: set[int] = field(default_factory=set)
    heard: set[int] = field(default_factory=set)  # alert ids the receiver verified
    evicted: set[int] = field(default_factory=set)  # pushed out by newer alerts, by design
    frames: int = 0
    reused_counters: int = 0
    faults: list[str] = field(default_factory=list)

    @property
    def lost(self) -> set[int]:
        return self.persisted - self.heard - self.evicted

    def figures(self) -> dict[str, Any]:
        return {
            "cuts": self.cuts,
            "cuts_by_kind": dict(self.by_kind),
            "boots": self.boots,
            "alarm_presses": self.presses,
            "alerts_persisted": len(self.persisted),
            "alerts_heard": len(self.heard),
            "alerts_evicted": len(self.evicted),
            "alerts_lost": len(self.lost),
            "frames": self.frames,
            "reused_counters": self.reused_counters,
            "faults": len(self.faults),
        }


class FlashSlots:
    """A SlotStore backend over the twin's flash image."""

    def __init__(self, unit: VirtualUnit, prefix: str) -> None:
        self.space = unit.nvs().get(firmware_module("records").NVS_NAMESPACE, {})
        self.prefix = prefix

    def read(self, slot: int) -> bytes | None:
        entry = self.space.get(f"{self.prefix}{slot}")
        return None if entry is None else bytes.fromhex(entry["blob"])


def flash_state(unit: VirtualUnit) -> Any:
    """The counter state in the unit's flash, as the firmware decodes it
    (a StoreFault if it cannot be read)."""
    prefix, kind = firmware_module("records").STATE
    store = firmware_module("store").SlotStore(FlashSlots(unit, prefix), kind)
    return firmware_module("state").decode_state(store.load())


class _Campaign:
    def __init__(self, directory: Path, seed: int, board: Board) -> None:
        self.rng = random.Random(seed)
        self.unit = VirtualUnit(directory, board)
        self.known: KnownUnit = provision(self.unit)
        self.receiver = Receiver([self.known])
        self.report = CutReport()
        self.hwm = 0  # the counter mark in flash, as last read

    def hear(self, boot: Boot) -> None:
        """A receiver next to the unit: verifies, acknowledges alerts."""
        self.report.boots += 1
        for line in boot.lines:
            if "FAULT" in line:
                self.report.faults.append(line)
            persisted = PERSISTED.search(line)
            if persisted:
                self.report.persisted.add(int(persisted.group(1)))
            evicted = EVICTED.search(line)
            if evicted:
                self.report.evicted.add(int(evicted.group(1)))
        alert = acknowledge_alert(self.unit, boot, self.receiver, self.known.unit)
        if alert is not None:
            self.report.heard.add(alert["alert_id"])

    def press(self, at_ms: int) -> None:
        rng = Rng(self.rng.getrandbits(32))
        hold = [(0, self.rng.randint(2_500, 4_000))]  # the alarm hold
        presses = taps(rng, 3) if self.rng.random() < 0.5 else hold
        self.unit.press(at_ms, trace(rng, presses))
        self.report.presses += 1

    def round(self) -> None:
        unit, rng = self.unit, self.rng
        start = unit.clock_ms
        pressed_at = None
        if rng.random() < 0.6:
            pressed_at = start + rng.randint(0, ROUND_MS // 2)
            self.press(pressed_at)
        if rng.random() < 0.5:
            commit = unit.commits + rng.randint(1, 2)
            after = rng.random() < 0.5
            unit.run_until(start + 2 * ROUND_MS, commit, after, self.hear)
            kind = "commit-after" if after else "commit-before"
        else:
            # After a press, mostly while the unit is awake with it: the
            # gesture, the alert's persistence, its burst and first retries.
            at = (pressed_at or start) + rng.randint(0, ROUND_MS // 3 if pressed_at else ROUND_MS)
            boots_before = len(unit.boots)
            unit.run_until(start + 2 * ROUND_MS, on_boot=self.hear, cut_at_ms=at)
            awake = len(unit.boots) > boots_before and unit.boots[-1].power_cut
            kind = "awake" if awake else "asleep"
        if unit.asleep:
            return  # the commit did not come within the round: no cut
        self.cut(kind)
        self.power_back()

    def cut(self, kind: str) -> None:
        """Book a cut; the flash must read back, its counter mark never fall,
        and every alert pending there must reach the receiver in the end."""
        self.report.cuts += 1
        self.report.by_kind[kind] += 1
        try:
            state = flash_state(self.unit)
        except firmware_module("store").StoreFault as fault:
            self.report.faults.append(f"flash unreadable after a cut: {fault.reason}")
            return
        if state.counter_hwm < self.hwm:
            self.report.faults.append(f"counter mark fell from {self.hwm} to {state.counter_hwm}")
        self.hwm = max(self.hwm, state.counter_hwm)
        self.report.persisted.update(state.pending)

    def power_back(self) -> None:
        """A cell goes back in after a while; one time in four it is pulled
        again during that boot (a loose cell, a bounce of the contact)."""
        unit, rng = self.unit, self.rng
        while True:
            unit.power_off(unit.clock_ms + rng.randint(1, 10_000))
            cut = unit.clock_ms + rng.randint(0, 3_000) if rng.random() < 0.25 else None
            self.hear(unit.power_on(cut_at_ms=cut))
            if unit.asleep:
                return
            self.cut("during-power-on")

    def settle(self) -> None:
        self.unit.run_until(self.unit.clock_ms + SETTLE_MS, on_boot=self.hear)

    def check_counters(self) -> None:
        ads = [
            bytes.fromhex(e["data"])
            for b in self.unit.boots
            for e in b.events
            if e["kind"] == "advertise" and not e["connectable"]
        ]
        self.report.frames = len(ads)
        wanted = {ad[2:10] for ad in ads}
        counters: dict[bytes, int] = {}
        counter = 0
        while len(counters) < len(wanted) and counter <= self.unit.commits * 64 + len(ads) + 64:
            rolling_id = rid(self.known.keys.id, counter)
            if rolling_id in wanted:
                counters[rolling_id] = counter
            counter += 1
        # One advertise call per frame: the same counter in two is a reuse,
        # and a counter that resolves to nothing is a frame out of its unit's keys.
        seen = Counter(counters.get(ad[2:10], -1) for ad in ads)
        self.report.reused_counters = sum(n - 1 for c, n in seen.items() if c >= 0 and n > 1)
        self.report.reused_counters += seen.get(-1, 0)


def run_campaign(
    directory: Path, cuts: int, seed: int = 1, board: Board | None = None
) -> CutReport:
    """Cut the power `cuts` times over one twin unit's life; the report."""
    campaign = _Campaign(directory, seed, board or load_board())
    campaign.hear(campaign.unit.power_on())
    while campaign.report.cuts < cuts:
        campaign.round()
    campaign.settle()
    campaign.check_counters()
    return campaign.report
