"""When an acknowledgement is on the air, and what else is: times in,
decisions out, nothing on the radio (amrkit.acker puts them on the air).

When (docs/protocol.md 6.2). A unit listens for its acknowledgement only in
its retries: not during the burst, and the first retry comes exactly
`retry_first_s` after the burst. So a tag goes on the air when the first
frame of an alert (its burst, attempt 0) is verified and stays until that
first retry is over (burst + first back-off + one retry window + a margin,
from the frame heard), and again for one retry window and the margin after
each later frame heard. Once the retransmissions stop, the tag goes off.
HOLD, the earlier policy, held every tag two minutes after each frame.

Decoys. With cover traffic on, a cover sequence looks like an alert on the
air; an acknowledgement after alerts only would say which sequence was the
alert. So every routine frame (heartbeat, low battery, fault) is answered
as an alert frame would be: a decoy of the same shape (`09 FF` and 8 random
bytes, one tag for a sequence and its retries) on the same schedule. The
unit looks only for its pending alerts' tags, so decoys change nothing for
it; they cost the receiver's radio the same air time per routine sequence.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amrkit.paths import firmware_module
from amrkit.protocol import ACK_AD_HEADER, RID_LENGTH

if TYPE_CHECKING:
    from amrkit.receiver import Receiver

HOLD_S = 120.0  # the earlier policy: retries come at most ~61 s apart
# Beyond the unit's schedule: its sleep clock's drift over the back-off, and
# the receiver's own delay from hearing a frame to its tag on the air.
MARGIN_S = 1.0
ROUTINE = ("heartbeat", "low_battery", "fault")  # answered with decoys


@dataclass(frozen=True)
class AckPolicy:
    """How long a tag stays on the air after a frame it answers is heard."""

    name: str
    first_s: float  # after an attempt-0 frame (an alert's burst)
    again_s: float  # after any later frame (a retry)

    @classmethod
    def window(cls, config: Mapping[str, int] | None = None) -> AckPolicy:
        """On the air while the unit can hear it, for a unit with this config
        (the firmware's defaults unless given: receiver bundles carry only
        the heartbeat, and a longer burst is caught at the next retry)."""
        cfg = config or firmware_module("config").DEFAULTS
        retry_s = firmware_module("alert").RETRY_ADVERTISE_MS / 1000
        first = cfg["burst_ms"] / 1000 + cfg["retry_first_s"] + retry_s + MARGIN_S
        return cls("window", first, retry_s + MARGIN_S)


WINDOW = AckPolicy.window()
HOLD = AckPolicy("hold", HOLD_S, HOLD_S)


class AckSchedule:
    """Which payloads belong on the air, and until when: times in, decisions
    out, nothing on the radio."""

    def __init__(self, policy: AckPolicy = WINDOW, *, decoys: bool = True) -> None:
        self.policy = policy
        self.decoys = decoys
        self.until: dict[bytes, float] = {}  # ack AD -> off the air at
        self._decoy_of: dict[str, bytes] = {}  # unit -> its routine sequence's decoy

    def answer(self, ad: bytes, first: bool, now: float) -> bool:
        """Keep `ad` on the air for the policy's hold from now; True if it is new."""
        hold = self.policy.first_s if first else self.policy.again_s
        new = ad not in self.until
        self.until[ad] = max(self.until.get(ad, now), now + hold)
        return new

    def _decoy_for(self, unit: str, first: bool) -> bytes:
        """A routine sequence's decoy: a new random tag for its first frame,
        the same one for its retries (as an alert's tag is)."""
        ad = self._decoy_of.get(unit)
        if first or ad is None:
            ad = ACK_AD_HEADER + secrets.token_bytes(RID_LENGTH)
            self._decoy_of[unit] = ad
        return ad

    def heard(self, receiver: Receiver, events: list[dict[str, Any]], now: float) -> bytes | None:
        """Answer what the receiver verified in its last feed(): an alert or
        test press frame (first or retransmission) with its tag, a routine
        frame with a decoy. The payload this puts on the air anew, if any."""
        frame = next((e for e in events if "attempt" in e), None)
        first = frame is not None and frame["attempt"] == 0
        answered: bytes | None = None
        for known in (receiver.last_alert, receiver.last_test):
            if known is not None:
                answered = receiver.ack_ad(*known)
        if self.decoys and frame is not None and frame["event"] in ROUTINE:
            answered = self._decoy_for(frame["unit"], first)
        if answered is None:
            return None
        return answered if self.answer(answered, first, now) else None

    def due(self, now: float) -> list[bytes]:
        """Payloads still on the air at `now`, oldest first; drops the rest."""
        for ad in [ad for ad, until in self.until.items() if until <= now]:
            del self.until[ad]
        return list(self.until)

    def next_change(self) -> float | None:
        return min(self.until.values(), default=None)
