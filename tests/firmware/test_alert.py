# Alert sequencing under the MicroPython unix port: persist before send,
# burst then bounded back-off, battery floor, several alerts, and the
# schedule carried across deep sleep or lost with power.
from membackend import MemBackend

from amr.alert import (
    COVER,
    COVER_TAIL_IN,
    COVER_TAIL_MS,
    RETRY_ADVERTISE_MS,
    Sequencer,
    cover_gap_ms,
    cover_tail,
    heartbeat_gap_ms,
)
from amr.config import DEFAULTS
from amr.records import STATE
from amr.state import Counters, State, decode_state
from amr.store import SlotStore

FULL_MV = 3000


def no_jitter():
    return 0


def unit(cfg=None, random_u32=no_jitter):
    store = SlotStore(MemBackend(), STATE[1])
    counters = Counters(store, State())
    return Sequencer(cfg or DEFAULTS, counters, random_u32), counters, store


def draws(*values):
    """A stand-in for the RNG: these values, round and round."""
    state = [0]

    def random_u32():
        state[0] += 1
        return values[(state[0] - 1) % len(values)]

    return random_u32


def first_then(first, *values):
    """`first`, then values round and round (a cover's length draw, then jitter)."""
    rest = draws(*values)
    state = [True]

    def random_u32():
        if state[0]:
            state[0] = False
            return first
        return rest()

    return random_u32


def drive(seq, start, end, mv=FULL_MV):
    """Run the schedule as the app does; returns [(t, alert, attempt, span)]."""
    sent = []
    t = start
    while t <= end:
        for alert_id, attempt, span in seq.due(t, mv):
            sent.append((t, alert_id, attempt, span))
        due = seq.next_due()
        if due is None:
            break
        t = max(t + 1, due)
    return sent


def test_alarm_is_persisted_before_anything_is_due():
    seq, counters, store = unit()
    alert = seq.alarm(1000)
    # The pending alert is in flash already, before the first frame.
    assert decode_state(store.load()).pending == [alert]
    assert counters.writes == 1
    assert seq.next_due() == 1000


def test_burst_then_doubling_back_off_capped_at_60_s():
    # With no jitter drawn (the RNG says 0), the nominal schedule.
    seq, _, _ = unit(random_u32=draws(0))
    alert = seq.alarm(0)
    sent = drive(seq, 0, 20 * 60000)
    assert sent[0] == (0, alert, 0, DEFAULTS["burst_ms"])
    assert all(a == alert for _, a, _, _ in sent)
    quiet = [sent[i + 1][0] - sent[i][0] - sent[i][3] for i in range(len(sent) - 1)]
    first = DEFAULTS["retry_first_s"] * 1000
    assert quiet[:5] == [first, 2 * first, 4 * first, 8 * first, 16 * first]
    assert max(quiet) == 60000
    assert quiet[-1] == 60000
    assert all(span == RETRY_ADVERTISE_MS for _, _, _, span in sent[1:])


def test_burst_holds_a_whole_background_scan_window():
    # A phone scanning in the background listens 500 ms in every 5000 ms
    # (Android's LOW_POWER scan mode as ScanManager first had it): a burst
    # one interval plus one window long holds a whole window, whatever its
    # phase. (Android's screen-off scan, 512 ms in 10240 ms, needs retries:
    # docs/protocol.md 6.2.)
    assert DEFAULTS["burst_ms"] >= 5000 + 500


def test_back_off_is_jittered_from_the_second_retry_never_beyond_the_cap():
    seq, _, _ = unit(random_u32=draws(0xFFFFFFFF, 12345, 987654321, 7, 2**31 + 5))
    alert = seq.alarm(0)
    sent = drive(seq, 0, 30 * 60000)
    quiet = [sent[i + 1][0] - sent[i][0] - sent[i][3] for i in range(len(sent) - 1)]
    first = DEFAULTS["retry_first_s"] * 1000
    # The first retry, which collects the acknowledgement, is on time.
    assert quiet[0] == first
    nominal = [min(first << i, 60000) for i in range(1, len(quiet))]
    # Later ones lose up to a quarter of their back-off, at random ...
    for i, b in enumerate(nominal):
        assert b - b // 4 <= quiet[i + 1] <= b
    assert quiet[1:] != nominal
    # ... so the gaps at the cap do not repeat a fixed period, and the
    # longest is still the cap.
    capped = quiet[6:]
    assert len(set(capped)) > 3 and max(capped) <= 60000 and min(capped) >= 45000
    assert all(a == alert for _, a, _, _ in sent)


def test_back_off_cap_follows_config_but_never_exceeds_60_s():
    cfg = dict(DEFAULTS)
    cfg["retry_max_s"] = 10
    seq, _, _ = unit(cfg)
    seq.alarm(0)
    assert seq.backoff(10) == 10000
    assert unit()[0].backoff(30) == 60000


def test_below_battery_floor_nothing_is_sent_and_the_alert_stays():
    seq, counters, _ = unit()
    alert = seq.alarm(0)
    assert seq.due(0, DEFAULTS["battery_floor_mv"] - 1) == []
    assert seq.pending == 1 and counters.state.pending == [alert]
    # It looks again after the longest back-off, not at the next moment
    # (a wake loop would drain the cell); then a recovered cell sends the burst.
    cap = DEFAULTS["retry_max_s"] * 1000
    assert seq.next_due() == cap
    assert seq.due(5000, FULL_MV) == []
    assert seq.due(cap, FULL_MV)[0][:2] == (alert, 0)


def test_below_battery_floor_a_cover_sequence_is_dropped_not_kept_waking_the_unit():
    seq, _, _ = unit()
    seq.cover(0)
    alert = seq.alarm(0)
    assert seq.due(0, DEFAULTS["battery_floor_mv"] - 1) == []
    assert seq.busy == 1 and seq.next_due() == DEFAULTS["retry_max_s"] * 1000
    assert seq.acknowledge(alert)
    assert seq.busy == 0 and seq.next_due() is None  # nothing left to wake for


def test_second_alarm_gets_its_own_burst_and_both_are_retried():
    seq, _, _ = unit()
    first = seq.alarm(0)
    seq.due(0, FULL_MV)
    second = seq.alarm(4000)
    assert second != first
    sent = drive(seq, 4000, 10 * 60000)
    # The new alert's burst goes out at once (a retry of the first one that
    # falls due soon may join it in the same wake).
    assert (4000, second, 0, DEFAULTS["burst_ms"]) in sent
    assert {a for _, a, _, _ in sent} == {first, second}


def test_acknowledged_alert_stops():
    seq, counters, _ = unit()
    alert = seq.alarm(0)
    seq.due(0, FULL_MV)
    assert seq.acknowledge(alert)
    assert seq.pending == 0 and seq.next_due() is None
    assert counters.state.pending == []
    assert not seq.acknowledge(alert)


def test_schedule_survives_deep_sleep_through_rtc_snapshot():
    seq, counters, store = unit()
    alert = seq.alarm(0)
    seq.due(0, FULL_MV)
    seq.due(seq.next_due(), FULL_MV)
    due, snapshot = seq.next_due(), seq.snapshot()
    # Reboot after deep sleep: state from flash, schedule from RTC memory.
    again = Sequencer(
        DEFAULTS, Counters(store, decode_state(store.load()), counters.next), no_jitter
    )
    again.restore(due - 5, snapshot)
    assert again.next_due() == due
    assert again.due(due, FULL_MV)[0][:2] == (alert, 2)


def test_after_power_loss_pending_alerts_are_retried_at_once():
    seq, _, store = unit()
    alert = seq.alarm(0)
    again = Sequencer(DEFAULTS, Counters(store, decode_state(store.load()), None), no_jitter)
    again.restore(777)  # RTC memory was lost with the power
    assert again.due(777, FULL_MV)[0][:2] == (alert, 1)


def test_fifth_alarm_evicts_second_oldest_and_unschedules_it():
    seq, counters, _ = unit()
    ids = [seq.alarm(t * 1000) for t in range(5)]
    assert counters.evicted == ids[1]
    assert seq.pending == 4
    assert counters.state.pending == [ids[0], ids[2], ids[3], ids[4]]


# The cover sequence's first draw picks its length: one in COVER_TAIL_IN
# (draw % COVER_TAIL_IN == 0) a tail, else _COVER_LENGTHS[draw // COVER_TAIL_IN % 16].
SHORTEST = 1  # a short sequence, _COVER_LENGTHS[0]: one retry
LONGEST_SHORT = 15 * COVER_TAIL_IN + 1  # _COVER_LENGTHS[15]: two retries


def test_cover_sequence_has_an_acknowledged_alerts_timing_and_ends():
    seq, counters, _ = unit(random_u32=draws(SHORTEST))
    seq.cover(0)  # like an alert acked at its first retry
    cover = drive(seq, 0, 10 * 60000)
    alert_seq, _, _ = unit()
    alert = alert_seq.alarm(0)
    timing = drive(alert_seq, 0, 10 * 60000)[:2]
    assert [(t, a, s) for t, _, a, s in cover] == [(t, a, s) for t, _, a, s in timing]
    assert all(i >= COVER for _, i, _, _ in cover)
    assert seq.busy == 0 and seq.pending == 0  # over, and never an alert
    assert counters.writes == 0  # no flash write for cover traffic
    assert alert_seq.pending == 1 and alert != cover[0][1]


def test_longest_cover_sequence_draws_its_jitter_as_an_alert_does():
    rand = (3, 99999, 4242, 17, 123456789)
    seq, _, _ = unit(random_u32=first_then(LONGEST_SHORT, *rand))
    seq.cover(0)
    cover = drive(seq, 0, 10 * 60000)
    alert_seq, _, _ = unit(random_u32=draws(*rand))
    alert_seq.alarm(0)
    timing = drive(alert_seq, 0, 10 * 60000)[:3]
    assert len(cover) == 3
    assert [(t, a, s) for t, _, a, s in cover] == [(t, a, s) for t, _, a, s in timing]


def test_a_cover_tail_retries_as_an_unacknowledged_alert_for_up_to_its_first_30_minutes():
    fewest, most = cover_tail(DEFAULTS)
    assert fewest == 3  # one past the longest short sequence
    rand = (3, 99999, 4242, 17, 123456789)
    for pick, retries in ((0, fewest), (most - fewest, most)):
        seq, _, _ = unit(random_u32=first_then(pick * COVER_TAIL_IN, *rand))
        seq.cover(0)
        cover = drive(seq, 0, 2 * COVER_TAIL_MS)
        alert_seq, _, _ = unit(random_u32=draws(*rand))
        alert_seq.alarm(0)
        timing = drive(alert_seq, 0, 2 * COVER_TAIL_MS)[: 1 + retries]
        assert len(cover) == 1 + retries and seq.busy == 0
        assert [(t, a, s) for t, _, a, s in cover] == [(t, a, s) for t, _, a, s in timing]
    # The most: what an alert makes in its first 30 minutes. Without jitter
    # (the longest back-offs) it makes no more than that; with a quarter off
    # every jittered back-off (the shortest), no fewer.
    longest, _, _ = unit()
    longest.alarm(0)
    assert len(drive(longest, 0, COVER_TAIL_MS)) - 1 <= most
    # A quarter of each back-off off (the most the jitter takes): r % (b/4 + 1) == b/4.
    shortest, _, _ = unit(random_u32=draws(1000, 2000, 4000, 8000, *([15000] * 40)))
    shortest.alarm(0)
    assert len(drive(shortest, 0, COVER_TAIL_MS)) - 1 >= most


def test_cover_lengths_one_in_sixteen_a_tail():
    fewest, most = cover_tail(DEFAULTS)
    lengths = []
    for r in range(COVER_TAIL_IN * 16):
        seq, _, _ = unit(random_u32=draws(r))
        seq.cover(0)
        lengths.append(len(drive(seq, 0, 2 * COVER_TAIL_MS)) - 1)
    tails = [n for n in lengths if n >= fewest]
    assert len(tails) * COVER_TAIL_IN == len(lengths)
    assert all(fewest <= n <= most for n in tails)
    assert sorted(n for n in lengths if n < fewest) == sorted(([1] * 15 + [2]) * 15)


def test_cover_sequences_survive_deep_sleep_but_not_power_loss():
    seq, counters, store = unit(random_u32=draws(LONGEST_SHORT))
    seq.cover(0)
    seq.due(0, FULL_MV)
    snapshot, due = seq.snapshot(), seq.next_due()
    again = Sequencer(DEFAULTS, Counters(store, State(), counters.next), no_jitter)
    again.restore(due, snapshot)
    assert again.busy == 1 and again.due(due, FULL_MV)[0][1] == 1
    lost = Sequencer(DEFAULTS, Counters(store, State(), None), no_jitter)
    lost.restore(due)
    assert lost.busy == 0


def test_cover_gap_is_exponential_around_the_rate():
    gaps = [cover_gap_ms((i * 2654435761) & 0xFFFFFFFF, 24) for i in range(2000)]
    mean = sum(gaps) / len(gaps)
    assert 3000000 < mean < 4200000  # one hour on average at 24 a day
    assert min(gaps) >= 0 and max(gaps) > 4 * mean


def test_heartbeat_gap_is_uniform_within_a_fifth_of_the_interval_mean_the_interval():
    for beat_s in (60, DEFAULTS["heartbeat_s"], 86400):
        beat = beat_s * 1000
        lowest = heartbeat_gap_ms(0, beat)
        highest = heartbeat_gap_ms(2 * (beat // 5), beat)
        assert (lowest, highest) == (beat - beat // 5, beat + beat // 5)
        assert lowest <= heartbeat_gap_ms(0xFFFFFFFF, beat) <= highest
    # Every value of the range once (one whole cycle of the draw's residue):
    # each gap comes up once, and the mean is the interval itself.
    beat = 60000
    span = 2 * (beat // 5) + 1
    gaps = [heartbeat_gap_ms(r, beat) for r in range(span)]
    assert len(set(gaps)) == span
    assert sum(gaps) == beat * span
