"""What a scanner can make of a unit's frames, from its own records only
(amrkit.twin.observer.Heard): no keys, no boot log. The ground truth enters
only as the labels a classifier is scored against.

- Rotation: every unit payload is heard from one address and every address
  carries one payload; none comes back once the unit has moved on.
- Bytes: for each position of the unit's AD, how many values it took.
- Sequences: a burst (a window longer than any retry or heartbeat window)
  and the short windows that follow it; a short window after a quiet gap
  longer than `join_s` stands alone (a heartbeat). Answers (anything on the
  air that is not the unit's frame shape: a receiver's acknowledgement or
  decoy) are credited to the sequence they first appear in.
- A classifier of alert against routine sequences: a decision stump (the
  best single feature and threshold), scored by leave-one-out against the
  majority-class baseline and its binomial sampling error.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from amrkit.twin.observer import Heard

UNIT_AD_HEADER = bytes((0x1E, 0xFF))  # the frame's shape on air, as the protocol publishes it
UNIT_AD_LENGTH = 31
# A window at least this long opens a sequence: retries and heartbeats
# advertise for 1 s (docs/protocol.md 4); bursts are longer (5.6 s by default).
BURST_MIN_S = 1.5
# One-sided 99.9 % normal quantile, for the sampling error of an accuracy: a
# stump picks the best of several features, which on a few dozen sequences
# can fit noise; at 99 % that crossed the bound in a few runs in a thousand.
Z = 3.090
RETRY_CAP_S = 60.0  # an alert's retries are never further apart (docs/protocol.md 6.2)
# A twin unit's wake in wall time: the sim's tick, a process start and the
# boot until its radio is up (0.1-0.3 s measured), with room for a busy host.
TWIN_WAKE_S = 1.0
FEATURES = ("first_s", "first_copies", "windows", "copies", "span_s", "answered", "answer_s")


def is_unit_frame(data: bytes) -> bool:
    return len(data) == UNIT_AD_LENGTH and data.startswith(UNIT_AD_HEADER)


@dataclass(frozen=True)
class Window:
    """One payload on the air: its first and last report and copies."""

    data: bytes
    addresses: frozenset[str]
    first: float
    last: float
    copies: int  # advertising reports (scan responses not counted)

    @property
    def length(self) -> float:
        return self.last - self.first


def windows(heard: Iterable[Heard], select: Callable[[bytes], bool]) -> list[Window]:
    """The payloads `select` picks, one window each, in order of first report."""
    reports: dict[bytes, list[Heard]] = {}
    for h in heard:
        if select(h.data):
            reports.setdefault(h.data, []).append(h)
    out = [
        Window(
            data,
            frozenset(h.address for h in hs),
            min(h.t for h in hs),
            max(h.t for h in hs),
            sum(h.pdu != "SCAN_RSP" for h in hs),
        )
        for data, hs in reports.items()
    ]
    return sorted(out, key=lambda w: w.first)


def address_kind(address: str, address_type: int) -> str:
    """Public, or the random address's subtype from its two top bits."""
    if address_type == 0:
        return "public"
    top = int(address[:2], 16) >> 6
    return ("non-resolvable private", "resolvable private", "reserved", "static")[top]


def _returns(heard: list[Heard], key: Callable[[Heard], object]) -> int:
    """Keys heard again after another key was heard in between."""
    done: set[object] = set()
    back: set[object] = set()
    current = None
    for h in heard:
        k = key(h)
        if k != current:
            if k in done:
                back.add(k)
            if current is not None:
                done.add(current)
            current = k
    return len(back)


@dataclass(frozen=True)
class Rotation:
    payloads: int
    addresses: int
    payloads_with_several_addresses: int
    addresses_with_several_payloads: int
    # heard again once another was on the air
    payload_returns: int
    address_returns: int
    address_kinds: dict[str, int]
    pdus: dict[str, int]
    rssi: dict[int, int]


def rotation(heard: list[Heard], select: Callable[[bytes], bool] = is_unit_frame) -> Rotation:
    """How the selected payloads and their addresses change together."""
    mine = sorted((h for h in heard if select(h.data)), key=lambda h: h.t)
    by_payload: dict[bytes, set[str]] = {}
    by_address: dict[str, set[bytes]] = {}
    for h in mine:
        by_payload.setdefault(h.data, set()).add(h.address)
        by_address.setdefault(h.address, set()).add(h.data)
    kinds = Counter(address_kind(h.address, h.address_type) for h in mine)
    return Rotation(
        len(by_payload),
        len(by_address),
        sum(len(a) > 1 for a in by_payload.values()),
        sum(len(p) > 1 for p in by_address.values()),
        _returns(mine, lambda h: h.data),
        _returns(mine, lambda h: h.address),
        dict(kinds),
        dict(Counter(h.pdu for h in mine)),
        dict(Counter(h.rssi for h in mine)),
    )


def distinct_per_position(payloads: Sequence[bytes]) -> list[int]:
    """For each byte position of the payloads (all of one length), how many values."""
    return [len({p[i] for p in payloads}) for i in range(len(payloads[0]))] if payloads else []


def expected_distinct(n: int) -> float:
    """Distinct values expected among n uniformly random bytes."""
    return 256 * (1 - (255 / 256) ** n)


def join_s(speed: float) -> float:
    """The longest quiet gap inside a sequence as an observer sees it in the
    twin at `speed` (deep sleep fast-forwarded, the wake in real time)."""
    return RETRY_CAP_S / speed + TWIN_WAKE_S


@dataclass
class Seq:
    """A sequence as the observer groups it, and the answer that followed."""

    windows: list[Window]
    answer_s: float | None = None  # first answer's delay from the sequence's first report
    answers: int = 0  # answer payloads first heard during it

    @property
    def first(self) -> float:
        return self.windows[0].first

    @property
    def last(self) -> float:
        return max(w.last for w in self.windows)

    def features(self) -> dict[str, float]:
        head = self.windows[0]
        return {
            "first_s": head.length,
            "first_copies": head.copies,
            "windows": len(self.windows),
            "copies": sum(w.copies for w in self.windows),
            "span_s": self.last - self.first,
            "answered": float(self.answer_s is not None),
            "answer_s": -1.0 if self.answer_s is None else self.answer_s,
        }


def sequences(heard: list[Heard], join_s: float, burst_s: float = BURST_MIN_S) -> list[Seq]:
    """The unit's windows grouped into sequences, each with its answers."""
    out: list[Seq] = []
    for w in windows(heard, is_unit_frame):
        if out and w.length < burst_s and w.first - out[-1].last <= join_s:
            out[-1].windows.append(w)
        else:
            out.append(Seq([w]))
    answers = windows(heard, lambda d: not is_unit_frame(d))
    for i, seq in enumerate(out):
        end = out[i + 1].first if i + 1 < len(out) else math.inf
        new = [a for a in answers if seq.first <= a.first < end]
        seq.answers = len(new)
        seq.answer_s = new[0].first - seq.first if new else None
    return out


def labels(seqs: list[Seq], alert_payloads: set[bytes]) -> list[bool]:
    """Ground truth: a sequence is an alert's if it carries any alert frame."""
    return [any(w.data in alert_payloads for w in s.windows) for s in seqs]


# -- classifier ----------------------------------------------------------------


@dataclass(frozen=True)
class Stump:
    """Alert if `feature` is above (or, not above) `threshold`; None: always `constant`."""

    feature: str | None
    threshold: float = 0.0
    alert_above: bool = True
    constant: bool = False

    def predict(self, x: dict[str, float]) -> bool:
        if self.feature is None:
            return self.constant
        return (x[self.feature] > self.threshold) == self.alert_above


def fit(xs: list[dict[str, float]], ys: list[bool]) -> Stump:
    """The stump with the most training sequences right; the majority
    class unless a feature does strictly better."""
    alerts = sum(ys)
    best = Stump(None, constant=alerts > len(ys) - alerts)
    best_right = max(alerts, len(ys) - alerts)
    for feature in FEATURES:
        values = sorted({x[feature] for x in xs})
        for lo, hi in itertools.pairwise(values):
            threshold = (lo + hi) / 2
            above = sum((x[feature] > threshold) == y for x, y in zip(xs, ys, strict=True))
            for alert_above, right in ((True, above), (False, len(ys) - above)):
                if right > best_right:
                    best, best_right = Stump(feature, threshold, alert_above), right
    return best


def leave_one_out(xs: list[dict[str, float]], ys: list[bool]) -> float:
    """Accuracy on each sequence of the stump fitted on all the others."""
    right = 0
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        stump = fit(xs[:i] + xs[i + 1 :], ys[:i] + ys[i + 1 :])
        right += stump.predict(x) == y
    return right / len(ys)


def wilson_upper(p: float, n: int, z: float = Z) -> float:
    """Upper end of the Wilson score interval of a proportion p over n trials."""
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


@dataclass(frozen=True)
class Classification:
    sequences: int
    alerts: int
    accuracy: float  # leave-one-out
    baseline: float  # always the majority class
    bound: float  # the baseline plus its sampling error (Wilson, one-sided 99.9 %)
    stump: Stump  # fitted on every sequence: the feature that separates best

    @property
    def beats_chance(self) -> bool:
        return self.accuracy > self.bound


def classify(seqs: list[Seq], ys: list[bool]) -> Classification:
    if not seqs:
        raise ValueError("no sequences to classify")
    xs = [s.features() for s in seqs]
    alerts = sum(ys)
    baseline = max(alerts, len(ys) - alerts) / len(ys)
    return Classification(
        len(ys),
        alerts,
        leave_one_out(xs, ys),
        baseline,
        wilson_upper(baseline, len(ys)),
        fit(xs, ys),
    )


# -- the whole analysis ----------------------------------------------------------


def bursts(heard: list[Heard]) -> int:
    """Bursts heard so far (windows at least BURST_MIN_S long)."""
    return sum(w.length >= BURST_MIN_S for w in windows(heard, is_unit_frame))


@dataclass(frozen=True)
class Analysis:
    unit: Rotation  # the unit's frames
    answers: Rotation  # everything else on the air: the receiver's tags and decoys
    distinct: list[int]  # values per byte position of the unit's AD
    sequences: list[Seq]
    labels: list[bool]
    classification: Classification

    @property
    def constant_positions(self) -> list[int]:
        return [i for i, n in enumerate(self.distinct) if n == 1]


def analyse(heard: list[Heard], alert_payloads: set[bytes], join_s: float) -> Analysis:
    """Everything above over one watch; `alert_payloads` (the ground truth)
    only labels the sequences."""
    payloads = [w.data for w in windows(heard, is_unit_frame)]
    seqs = sequences(heard, join_s)
    ys = labels(seqs, alert_payloads)
    return Analysis(
        rotation(heard),
        rotation(heard, lambda d: not is_unit_frame(d)),
        distinct_per_position(payloads),
        seqs,
        ys,
        classify(seqs, ys),
    )


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3),
        "median": round(ordered[len(ordered) // 2], 3),
        "max": round(ordered[-1], 3),
    }


def timing(analysis: Analysis) -> dict[str, dict[str, object]]:
    """What the observer measures within awake periods, per true class."""
    out: dict[str, dict[str, object]] = {}
    for name, wanted in (("alert", True), ("routine", False)):
        seqs = [s for s, y in zip(analysis.sequences, analysis.labels, strict=True) if y == wanted]
        feats = [s.features() for s in seqs]
        later = [w for s in seqs for w in s.windows[1:]]
        out[name] = {
            "sequences": len(seqs),
            "first_window_s": _spread([f["first_s"] for f in feats]),
            "first_window_copies": _spread([f["first_copies"] for f in feats]),
            "later_window_s": _spread([w.length for w in later]),
            "later_window_copies": _spread([float(w.copies) for w in later]),
            "windows": dict(sorted(Counter(int(f["windows"]) for f in feats).items())),
            "answered": sum(s.answer_s is not None for s in seqs),
            "answer_delay_s": _spread([s.answer_s for s in seqs if s.answer_s is not None]),
        }
    return out
