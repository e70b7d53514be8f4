"""Receivers that listen like real ones: which of a unit's advertising events
a phone or a gateway hears, and when.

The twin's offline radio hands every frame to whoever asks, at the instant
it goes on the air. A phone does not: its controller listens `window_ms` in
every `interval_ms`, on one advertising channel per window, at a phase
unrelated to the unit's clock, and drops some packets it should have heard.

The unit's side (firmware/amr/radio.py): a frame stays on the air from its
`advertise` event to the next `advertise`, `advertise_stop` or `radio`
event of the boot (or the boot's end); meanwhile one advertising event
every `interval_us` plus BLE's pseudo-random advDelay of 0-10 ms (Core
Specification Vol 6 Part B 4.4.2.2.1), each event one ADV_NONCONN_IND on
channels 37, 38 and 39 in turn.

The receiver's side: a packet is heard if it lies wholly inside a window
on the window's channel (the channel moves on by one every window, as
controllers do), and it is then lost with the profile's probability. A
receiver whose window is as long as its interval listens all the time.
Everything random (the window phase, the first channel, advDelay, losses)
comes from the random.Random the Scanner is given: deterministic for a
seed.

Profiles and their sources. The Android figures are AOSP's
`packages/modules/Bluetooth`, `android/app/src/com/android/bluetooth/
le_scan/ScanManager.java` as of Android 15 (android15-release; the same
values in `gatt/ScanManager.java` since Android 8): the scan window and
interval the stack gives the controller for each ScanSettings scan mode.

- SCAN_MODE_LOW_LATENCY: SCAN_MODE_LOW_LATENCY_WINDOW_MS = 100,
  SCAN_MODE_LOW_LATENCY_INTERVAL_MS = 100 (listens all the time).
- SCAN_MODE_BALANCED: SCAN_MODE_BALANCED_WINDOW_MS = 183,
  SCAN_MODE_BALANCED_INTERVAL_MS = 730.
- SCAN_MODE_LOW_POWER: SCAN_MODE_LOW_POWER_WINDOW_MS = 140,
  SCAN_MODE_LOW_POWER_INTERVAL_MS = 1400.
- Screen off: ScanManager.updateScanModeScreenOff turns the scan of an app
  that is not in the foreground (and a LOW_POWER scan of a foreground
  service) into ScanSettings.SCAN_MODE_SCREEN_OFF:
  SCAN_MODE_SCREEN_OFF_LOW_POWER_WINDOW_MS = 512,
  SCAN_MODE_SCREEN_OFF_LOW_POWER_INTERVAL_MS = 10240. (A foreground
  service's BALANCED scan becomes SCAN_MODE_SCREEN_OFF_BALANCED, 183/730,
  and its LOW_LATENCY scan stays LOW_LATENCY.) The often quoted "0.5 s in
  every 5 s" is Android 5.0's SCAN_MODE_LOW_POWER (ScanNative,
  SCAN_MODE_LOW_POWER_WINDOW_MS = 500, SCAN_MODE_LOW_POWER_INTERVAL_MS =
  5000): kept as ANDROID_5_LOW_POWER for comparison.
- Gateway: a dedicated receiver scanning all the time, as `amr listen`
  does through bumble (amrkit.ble.bumble.scanner: scan_window_ms defaults
  to scan_interval_ms, 60 ms, bumble's DEVICE_DEFAULT_SCAN_INTERVAL and
  DEVICE_DEFAULT_SCAN_WINDOW).

OS pauses, as AOSP documents them in the same file:

- ScanManager.handleStartScan / handleSuspendScans (requiresScreenOn):
  with the screen off an *unfiltered* scan is suspended altogether, so it
  hears nothing. The frame carries no constant to filter on (by design), so
  a receiver app must use a filter that is not empty yet matches every
  frame, e.g. `ScanFilter.Builder().setAdvertisingDataType(0xFF)` (API 33):
  the profiles assume that. ANDROID_UNFILTERED_SCREEN_OFF is the scan
  without it: suspended, it hears nothing.
- ScanManager.regularScanTimeout after AppScanStats.SCAN_TIMEOUT_MS (30
  min of scanning): an unfiltered scan becomes opportunistic (it hears only
  while another app scans), a filtered one is downgraded to at most
  SCAN_MODE_LOW_POWER (SCAN_MODE_FORCE_DOWNGRADED). Not a pause of its own
  here: a phone whose scan has run that long is ANDROID_LOW_POWER (or
  ANDROID_BACKGROUND with the screen off, which the downgrade leaves as
  it is).

Loss and processing delay are not Android constants. Loss is an
ASSUMPTION for a button worn on the body and a phone whose one 2.4 GHz
radio also serves Wi-Fi (10 %; 5 % for a fixed gateway), to be measured on
real phones; the processing delay (scan result to the app, verification,
startAdvertisingSet until the acknowledgement is on the air) is an
ASSUMPTION of 100 ms for a phone and 20 ms for a gateway. The receiver's
acknowledgement advertises at AdvertisingSetParameters.INTERVAL_LOW (160 x
0.625 ms = 100 ms, the Builder's default), as `amr listen --ack` does
(amrkit.ack_schedule, docs/protocol.md section 6.2): from the alert's first frame
heard for ACK_ON_AIR_MS, until the unit's first retry is over, and for
ACK_AGAIN_MS after each retransmission heard.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amrkit.ack_schedule import HOLD, WINDOW
from amrkit.paths import firmware_dir

if TYPE_CHECKING:
    from amrkit.receiver import Receiver
    from amrkit.twin.unit import Boot, VirtualUnit

ADV_DELAY_MAX_MS = 10.0  # advDelay: 0-10 ms added to every advertising interval
CHANNELS = 3  # 37, 38, 39
# One ADV_NONCONN_IND with 31 bytes of AD on the LE 1M PHY: preamble 1,
# access address 4, header 2, AdvA 6, AD 31, CRC 3 = 47 bytes, 8 us each.
PACKET_MS = 47 * 8 / 1000
CHANNEL_STEP_MS = 0.5  # from one channel's packet to the next in an event
ACK_INTERVAL_MS = 100.0  # AdvertisingSetParameters.INTERVAL_LOW
# How long the receiver advertises an acknowledgement after the alert's
# first frame (burst, first back-off, first retry, margin), and after a retry.
ACK_ON_AIR_MS = round(WINDOW.first_s * 1000)
ACK_AGAIN_MS = round(WINDOW.again_s * 1000)


@dataclass(frozen=True)
class Profile:
    """How a receiver listens, and where each figure comes from."""

    name: str
    window_ms: float
    interval_ms: float
    loss: float  # probability that a packet heard in a window is lost
    processing_ms: float  # from hearing an alert to its acknowledgement on the air
    source: str
    suspended: bool = False  # the OS has stopped the scan: nothing is heard
    all_channels: bool = False  # listens on the three channels at once (the ideal radio)

    @property
    def continuous(self) -> bool:
        return self.window_ms >= self.interval_ms

    @property
    def duty(self) -> float:
        return 0.0 if self.suspended else min(1.0, self.window_ms / self.interval_ms)

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "interval_ms": self.interval_ms,
            "loss": self.loss,
            "processing_ms": self.processing_ms,
            "suspended": self.suspended,
            "source": self.source,
        }


_AOSP = (
    "AOSP packages/modules/Bluetooth, android/app/src/com/android/bluetooth/"
    "le_scan/ScanManager.java (Android 15, android15-release): "
)
_PHONE = "; loss 10 % and 100 ms to the ack: assumptions, to be measured on phones"

IDEAL = Profile(
    "ideal",
    1.0,
    1.0,
    0.0,
    0.0,
    "the twin's radio before receiver models: every frame heard at its first event",
    all_channels=True,
)
GATEWAY = Profile(
    "gateway",
    60.0,
    60.0,
    0.05,
    20.0,
    "amrkit.ble.bumble.scanner defaults (scan_window_ms = scan_interval_ms = 60, "
    "bumble DEVICE_DEFAULT_SCAN_INTERVAL/WINDOW); loss 5 % and 20 ms to the ack: assumptions",
)
ANDROID_LOW_LATENCY = Profile(
    "android_low_latency",
    100.0,
    100.0,
    0.10,
    100.0,
    _AOSP
    + "SCAN_MODE_LOW_LATENCY_WINDOW_MS = 100, SCAN_MODE_LOW_LATENCY_INTERVAL_MS = 100"
    + _PHONE,
)
ANDROID_BALANCED = Profile(
    "android_balanced",
    183.0,
    730.0,
    0.10,
    100.0,
    _AOSP + "SCAN_MODE_BALANCED_WINDOW_MS = 183, SCAN_MODE_BALANCED_INTERVAL_MS = 730" + _PHONE,
)
ANDROID_LOW_POWER = Profile(
    "android_low_power",
    140.0,
    1400.0,
    0.10,
    100.0,
    _AOSP + "SCAN_MODE_LOW_POWER_WINDOW_MS = 140, SCAN_MODE_LOW_POWER_INTERVAL_MS = 1400" + _PHONE,
)
ANDROID_BACKGROUND = Profile(
    "android_background",
    512.0,
    10240.0,
    0.10,
    100.0,
    _AOSP + "screen off, SCAN_MODE_SCREEN_OFF: SCAN_MODE_SCREEN_OFF_LOW_POWER_WINDOW_MS = 512, "
    "SCAN_MODE_SCREEN_OFF_LOW_POWER_INTERVAL_MS = 10240 (a filtered scan)" + _PHONE,
)
ANDROID_5_LOW_POWER = Profile(
    "android5_low_power",
    500.0,
    5000.0,
    0.10,
    100.0,
    "Android 5.0 packages/apps/Bluetooth src/com/android/bluetooth/gatt/ScanManager.java "
    "ScanNative: SCAN_MODE_LOW_POWER_WINDOW_MS = 500, SCAN_MODE_LOW_POWER_INTERVAL_MS = 5000"
    + _PHONE,
)
ANDROID_UNFILTERED_SCREEN_OFF = Profile(
    "android_unfiltered_screen_off",
    512.0,
    10240.0,
    0.10,
    100.0,
    _AOSP + "an unfiltered scan with the screen off is suspended (handleSuspendScans, "
    "requiresScreenOn)",
    suspended=True,
)

PROFILES = {
    p.name: p
    for p in (
        IDEAL,
        GATEWAY,
        ANDROID_LOW_LATENCY,
        ANDROID_BALANCED,
        ANDROID_LOW_POWER,
        ANDROID_BACKGROUND,
        ANDROID_5_LOW_POWER,
        ANDROID_UNFILTERED_SCREEN_OFF,
    )
}
# What `make bench` measures, the baseline first.
BENCH_PROFILES = (
    "ideal",
    "gateway",
    "android_low_latency",
    "android_balanced",
    "android_low_power",
    "android5_low_power",
    "android_background",
)


def unit_ack_scan() -> Profile:
    """The unit's own scan for acknowledgements, from firmware/amr/radio.py."""
    source = (firmware_dir() / "amr" / "radio.py").read_text()

    def const(name: str) -> int:
        found = re.search(rf"^{name} = const\((\d+)\)", source, re.M)
        if found is None:
            raise ValueError(f"radio.py has no {name}")
        return int(found.group(1))

    return Profile(
        "unit_ack_scan",
        const("_SCAN_WINDOW_US") / 1000,
        const("_SCAN_INTERVAL_US") / 1000,
        0.10,
        0.0,
        "firmware/amr/radio.py _SCAN_WINDOW_US, _SCAN_INTERVAL_US; loss 10 %: assumption",
    )


@dataclass(frozen=True)
class Span:
    """One frame on the air: from start to end (ms, the unit's clock)."""

    start_ms: float
    end_ms: float
    interval_ms: float
    data: str  # the AD, hex


def spans(boot: Any) -> list[Span]:
    """The frames a boot put on the air (a twin Boot: its events, its end)."""
    out: list[Span] = []
    open_: dict[str, Any] | None = None
    for event in boot.events:
        kind = event["kind"]
        if open_ is not None and kind in ("advertise", "advertise_stop", "radio"):
            out.append(_span(open_, event["t"]))
            open_ = None
        if kind == "advertise" and not event.get("connectable"):
            open_ = event
    if open_ is not None:
        out.append(_span(open_, boot.ended_ms))
    return [s for s in out if s.end_ms > s.start_ms]


def _span(event: dict[str, Any], end: float) -> Span:
    return Span(float(event["t"]), float(end), event["interval_us"] / 1000, event["data"])


class Scanner:
    """One receiver listening with a profile: the window phase and the first
    channel are drawn once, from `rng`, as a phone's scan runs on its own
    clock; advDelay and losses are drawn as packets go by."""

    def __init__(
        self,
        profile: Profile,
        rng: random.Random,
        phase_ms: float | None = None,
        channel0: int | None = None,
    ) -> None:
        self.profile = profile
        self.rng = rng
        # The start of one window (ms on the unit's clock) and its channel
        # (0, 1, 2 for 37, 38, 39): drawn unless given.
        drawn_phase = rng.uniform(0.0, profile.interval_ms)
        drawn_channel = rng.randrange(CHANNELS)
        self.phase_ms = drawn_phase if phase_ms is None else phase_ms
        self.channel0 = drawn_channel if channel0 is None else channel0

    def channel_at(self, t: float) -> int | None:
        """The channel listened on at t for a whole packet from t, or None."""
        p = self.profile
        if p.suspended:
            return None
        k = math.floor((t - self.phase_ms) / p.interval_ms)
        if not p.continuous:
            offset = t - self.phase_ms - k * p.interval_ms
            if offset + PACKET_MS > p.window_ms:
                return None
        return (self.channel0 + k) % CHANNELS

    def events(self, span: Span) -> Iterator[float]:
        """The advertising events of a frame: one at its start, then one
        every interval plus advDelay, while it is on the air."""
        t = span.start_ms
        while t < span.end_ms:
            yield t
            t += span.interval_ms + self.rng.uniform(0.0, ADV_DELAY_MAX_MS)

    def heard(self, span: Span) -> Iterator[float]:
        """Times at which packets of this frame reach the receiver, in order."""
        for event in self.events(span):
            for channel in range(CHANNELS):
                t = event + channel * CHANNEL_STEP_MS
                if t + PACKET_MS > span.end_ms:
                    break
                if self._listens(t, channel) and self.rng.random() >= self.profile.loss:
                    yield t

    def hears_event(self, t: float) -> bool:
        """Does an advertising event that starts at t (one packet on each
        channel in turn) reach the receiver?"""
        for channel in range(CHANNELS):
            at = t + channel * CHANNEL_STEP_MS
            if self._listens(at, channel):
                return self.rng.random() >= self.profile.loss
        return False

    def _listens(self, t: float, channel: int) -> bool:
        listening = self.channel_at(t)
        return listening is not None and (self.profile.all_channels or listening == channel)

    def first_heard(self, span: Span) -> float | None:
        """When the receiver first gets this frame, or None if it never does."""
        return next(self.heard(span), None)


def _wall_ms() -> float:
    return time.monotonic() * 1000


def live_listener(
    profile: Profile, seed: int | str = 0, clock_ms: Callable[[], float] = _wall_ms
) -> Callable[[], Callable[[], bool]]:
    """For the twin's live radio (`amr sim --receiver`): each receiver that
    connects gets its own Scanner, on the wall clock, and hears an
    advertising event as that Scanner would."""
    clients = itertools.count()

    def listener() -> Callable[[], bool]:
        scanner = Scanner(profile, random.Random(f"{seed}:{profile.name}:{next(clients)}"))
        return lambda: scanner.hears_event(clock_ms())

    return listener


def acknowledge_alert(
    unit: VirtualUnit, boot: Boot, receiver: Receiver, unit_id: str
) -> dict[str, Any] | None:
    """A receiver that hears every frame: fed the boot's frames in order until
    one verifies as an alert (a routine frame due at the same wake may go out
    first), it acknowledges that alert on the air from that frame for
    ACK_ON_AIR_MS, as amrkit.ack_schedule does: the unit hears it at its first
    retry, whose own frame the acknowledgement's window already covers.
    A retry of an alert already reported (the first retry missed, or power
    came back) is acknowledged too, held to the next retry: the twin runs a
    boot to its end before the receiver answers, so a retry window after
    the frame would be over already (the acker's HOLD policy).
    The alert event, or None if no frame was one."""
    for sent in (e for e in boot.events if e["kind"] == "advertise"):
        events = receiver.feed(bytes.fromhex(sent["data"]), sent["t"] / 1000)
        alert = next((e for e in events if e["event"] == "alert"), None)
        if alert is not None:
            ack = receiver.ack_ad(unit_id, alert["alert_id"])
            unit.air(ack, sent["t"], sent["t"] + ACK_ON_AIR_MS)
            return alert
        if receiver.last_alert is not None and receiver.last_alert[0] == unit_id:
            ack = receiver.ack_ad(*receiver.last_alert)
            unit.air(ack, sent["t"], sent["t"] + round(HOLD.again_s * 1000))
    return None
