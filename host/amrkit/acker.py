"""Acknowledgements over the air, through a bumble host (a link that can
advertise: a USB HCI dongle or the twin's virtual radio; bleak cannot).

Each verified alert's tag is advertised for `hold_s` (retries come at most
about 61 s apart, so two minutes meet one); several tags take turns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bumble.device import AdvertisingType

from amrkit.ble.bumble.link import BumbleHost, VirtualBeacon, open_host

HOLD_S = 120.0
TURN_S = 1.0  # how long each tag is on the air before the next one's turn
INTERVAL_MS = 100.0


class Acker:
    def __init__(
        self,
        transport: str,
        *,
        hold_s: float = HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.hold_s = hold_s
        self._clock = clock
        self._acks: dict[bytes, float] = {}  # ack AD -> until
        self._host: BumbleHost | None = None
        self._beacon: VirtualBeacon | None = None
        self._turn = 0

    async def start(self) -> None:
        self._host = await open_host(self.transport, "amr-acker")
        self._beacon = VirtualBeacon(self._host, AdvertisingType.UNDIRECTED, INTERVAL_MS)

    def acknowledge(self, ack_ad: bytes) -> None:
        """Advertise this acknowledgement (see amrkit.protocol.ack_ad) from now on."""
        self._acks[ack_ad] = self._clock() + self.hold_s

    async def step(self) -> None:
        """Put the next tag on the air (call every TURN_S); drop expired ones."""
        if self._beacon is None:
            raise RuntimeError("Acker.start() first")
        now = self._clock()
        for ad in [ad for ad, until in self._acks.items() if until <= now]:
            del self._acks[ad]
        if not self._acks:
            if self._beacon.advertising:
                await self._beacon.stop()
            return
        ads = list(self._acks)
        self._turn = (self._turn + 1) % len(ads)
        if self._beacon.advertising:
            await self._beacon.set_data(ads[self._turn])
        else:
            await self._beacon.start(ads[self._turn])

    @property
    def active(self) -> int:
        return len(self._acks)

    async def close(self) -> None:
        if self._host is not None:
            await self._host.close()
            self._host = None
