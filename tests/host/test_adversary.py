"""An attacker on the air against the receiver (amrkit.twin.adversary):
forged, bit-flipped, replayed (seconds to days later), revoked-key and
cloned frames mixed into genuine traffic. A few thousand here; over
100,000 in `make bench`."""

from __future__ import annotations

from amrkit.twin.adversary import ATTACKS, run_adversary

PER_ATTACK = 700


def test_no_forged_replayed_or_cloned_frame_is_accepted() -> None:
    report = run_adversary(PER_ATTACK, seed=5)
    assert set(report.sent) == set(ATTACKS)
    assert all(n >= PER_ATTACK for n in report.sent.values()), report.sent
    assert sum(report.accepted.values()) == 0, report.figures()
    # The attack did not cost a genuine frame, and no event names a key.
    assert report.genuine > 0 and report.genuine_accepted == report.genuine
    assert report.keys_in_events == 0
    # The receiver counted them as what they are: unknown identifiers, bad
    # MICs (an identifier that was right), replays.
    for reason in ("rejected_unknown", "rejected_mic", "rejected_replay"):
        assert report.rejections[reason] > 0, report.rejections
