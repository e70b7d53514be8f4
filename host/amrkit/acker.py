"""Acknowledgements over the air, through a bumble host (a link that can
advertise: a USB HCI dongle or the twin's virtual radio; bleak cannot).
What goes on the air and when is amrkit.ack_schedule's.

Addresses. Every tag goes out under a fresh non-resolvable private address,
and so does every change of what is on the air (tags on the air at once
take turns; a tag newly answered goes on at once, for the retry that waits
for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bumble.device import AdvertisingType

from amrkit.ack_schedule import AckSchedule
from amrkit.ble.bumble.link import BumbleHost, VirtualBeacon, open_host

if TYPE_CHECKING:
    from amrkit.receiver import Receiver

TURN_S = 1.0  # how long each tag is on the air before the next one's turn
INTERVAL_MS = 100.0


class Acker:
    def __init__(
        self,
        transport: str,
        schedule: AckSchedule | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.schedule = schedule or AckSchedule()
        self._clock = clock
        self._host: BumbleHost | None = None
        self._beacon: VirtualBeacon | None = None
        self._on_air: bytes | None = None
        self._turn_ends = 0.0
        self._new: bytes | None = None  # answered since the last step: on the air next
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._host = await open_host(self.transport, "amr-acker")
        self._beacon = VirtualBeacon(
            self._host, AdvertisingType.UNDIRECTED, INTERVAL_MS, fresh_address=True
        )

    def heard(self, receiver: Receiver, events: list[dict[str, Any]]) -> None:
        """Answer what the receiver just verified (AckSchedule.heard)."""
        new = self.schedule.heard(receiver, events, self._clock())
        if new is not None:
            self._new = new
            self._wake.set()

    async def step(self) -> None:
        """Put the right payload on the air now: a newly answered one at
        once, else the next one's turn; off the air when none is left."""
        if self._beacon is None:
            raise RuntimeError("Acker.start() first")
        now = self._clock()
        ads = self.schedule.due(now)
        new, self._new = self._new, None
        if not ads:
            if self._beacon.advertising:
                await self._beacon.stop()
            self._on_air = None
            return
        if new in ads:
            choice = new
        elif self._on_air in ads and (now < self._turn_ends or len(ads) == 1):
            return
        else:
            after = ads.index(self._on_air) + 1 if self._on_air in ads else 0
            choice = ads[after % len(ads)]
        self._turn_ends = now + TURN_S
        if choice == self._on_air and self._beacon.advertising:
            return
        self._on_air = choice
        if self._beacon.advertising:
            await self._beacon.set_data(choice)
        else:
            await self._beacon.start(choice)

    async def run(self) -> None:
        """Keep the air up to date until cancelled: at each turn, each
        expiry, and at once when a payload is newly answered."""
        while True:
            self._wake.clear()  # before the step: a payload answered during it wakes the next
            await self.step()
            wait = TURN_S
            change = self.schedule.next_change()
            if change is not None:
                wait = min(wait, max(0.0, change - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def close(self) -> None:
        if self._host is not None:
            await self._host.close()
            self._host = None
