"""Rules 6-10 and the consumption arithmetic of one meter (no Spark)."""

from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlake.core.tariff import HALF_HOUR_US
from silver.judge import SilverRules, judge_messages
from silver.meter import MeterRules, Window, judge
from silver.split import split_at_half_hours
from tests.helpers import ZONE, tariff, us

TARIFF = tariff()
RULES = MeterRules(allowed_lateness_us=3600 * 10**6, max_power_kw=50.0, tariff=TARIFF)
MINUTE = 60 * 10**6


def feed(readings: list[tuple[str, float]], sensor: str = "X") -> tuple[Window, list]:
    window, verdicts = Window(), []
    for ts, energy in readings:
        verdicts.append(judge(window, sensor, us(ts), energy, RULES))
    return window, verdicts


def per_period(verdicts) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for verdict in verdicts:
        for piece in verdict.pieces:
            totals[piece.period_start_us] += piece.kwh
    return dict(totals)


def test_worked_example_interval_across_midnight() -> None:
    _, (_, v) = feed([("2024-02-03 23:40:00", 100.0), ("2024-02-04 00:20:00", 100.8)])
    assert [(p.period_start_us, p.band) for p in v.pieces] == [
        (us("2024-02-03 23:30:00"), "vazio"),
        (us("2024-02-04 00:00:00"), "vazio"),
    ]
    assert [p.kwh for p in v.pieces] == pytest.approx([0.4, 0.4], abs=1e-12)
    assert [p.cost_eur for p in v.pieces] == pytest.approx([0.4 * 0.1072] * 2, abs=1e-12)


def test_worked_example_cheias_into_ponta() -> None:
    _, (_, v) = feed([("2024-02-03 08:50:00", 200.0), ("2024-02-03 09:10:00", 200.6)])
    assert [(p.band, p.price) for p in v.pieces] == [("cheias", 0.1741), ("ponta", 0.24)]
    assert [p.kwh for p in v.pieces] == pytest.approx([0.3, 0.3], abs=1e-12)
    assert sum(p.cost_eur for p in v.pieces) == pytest.approx(0.12423, abs=1e-12)


def test_the_first_reading_is_only_a_baseline() -> None:
    _, (v,) = feed([("2024-02-03 08:50:00", 200.0)])
    assert v.accepted and v.pieces == [] and v.flags == []


def test_a_reading_on_a_boundary_starts_the_next_period() -> None:
    _, (_, v) = feed([("2024-02-03 08:30:00", 1.0), ("2024-02-03 09:00:00", 2.0)])
    assert [(p.period_start_us, p.kwh) for p in v.pieces] == [(us("2024-02-03 08:30:00"), 1.0)]


def test_a_long_outage_is_spread_over_every_period() -> None:
    _, (_, v) = feed([("2024-02-28 23:00:00", 10.0), ("2024-03-01 01:00:00", 15.2)])
    assert len(v.pieces) == 52  # 26 hours (2024 is a leap year), across the month end
    assert [p.kwh for p in v.pieces] == pytest.approx([0.1] * 52)


def test_duplicate_is_dropped_and_conflicting_duplicate_quarantined() -> None:
    _, verdicts = feed(
        [
            ("2024-02-03 08:00:00", 1.0),
            ("2024-02-03 08:01:00", 1.1),
            ("2024-02-03 08:01:00", 1.1),
            ("2024-02-03 08:01:00", 1.2),
        ]
    )
    assert [v.flags[0].reason for v in verdicts[2:]] == ["duplicate", "conflicting_duplicate"]
    assert not any(v.accepted or v.pieces for v in verdicts[2:])


def test_implausible_jump_is_rejected_and_not_a_baseline() -> None:
    window, verdicts = feed(
        [
            ("2024-02-03 08:00:00", 1.0),
            ("2024-02-03 08:01:00", 2.0),  # 1 kWh in a minute = 60 kW
            ("2024-02-03 08:02:00", 1.2),  # measured from 1.0, not from 2.0
        ]
    )
    assert verdicts[1].flags[0].reason == "implausible_jump" and not verdicts[1].accepted
    assert verdicts[2].accepted and verdicts[2].flags == []
    assert sum(p.kwh for p in verdicts[2].pieces) == pytest.approx(0.2)
    assert window.energy == [1.0, 1.2]


def test_just_below_the_power_limit_is_accepted() -> None:
    _, verdicts = feed([("2024-02-03 08:00:00", 1.0), ("2024-02-03 09:00:00", 50.9)])
    assert verdicts[1].accepted


def test_counter_decrease_counts_zero_and_becomes_the_baseline() -> None:
    _, verdicts = feed(
        [
            ("2024-02-03 08:00:00", 500.0),
            ("2024-02-03 08:10:00", 3.0),
            ("2024-02-03 08:20:00", 3.5),
        ]
    )
    assert verdicts[1].accepted and [f.reason for f in verdicts[1].flags] == ["counter_decrease"]
    assert [p.kwh for p in verdicts[1].pieces] == [0.0]
    assert sum(p.kwh for p in verdicts[2].pieces) == pytest.approx(0.5)


def test_too_late_is_quarantined_and_the_limit_itself_is_accepted() -> None:
    _, verdicts = feed(
        [
            ("2024-02-03 10:00:00", 5.0),
            ("2024-02-03 08:59:59", 4.0),  # more than an hour behind
            ("2024-02-03 09:00:00", 4.0),  # exactly an hour behind
        ]
    )
    assert verdicts[1].flags[0].reason == "too_late" and not verdicts[1].accepted
    assert verdicts[2].accepted


def test_a_late_reading_retracts_the_interval_and_adds_its_halves() -> None:
    _, verdicts = feed(
        [
            ("2024-02-03 08:50:00", 200.0),
            ("2024-02-03 09:10:00", 200.6),
            ("2024-02-03 09:00:00", 200.5),  # late: most of the rise was before 09:00
        ]
    )
    late = verdicts[2]
    assert sorted({p.sign for p in late.pieces}) == [-1, 1]
    totals = per_period(verdicts)
    assert totals[us("2024-02-03 08:30:00")] == pytest.approx(0.5, abs=1e-12)
    assert totals[us("2024-02-03 09:00:00")] == pytest.approx(0.1, abs=1e-12)


def test_a_late_reading_higher_than_its_successor_makes_that_interval_zero() -> None:
    _, verdicts = feed(
        [
            ("2024-02-03 08:00:00", 10.0),
            ("2024-02-03 08:20:00", 11.0),
            ("2024-02-03 08:10:00", 12.0),
        ]
    )
    assert [f.reason for f in verdicts[2].flags] == ["counter_decrease"]
    assert sum(per_period(verdicts).values()) == pytest.approx(2.0)


def test_the_window_keeps_only_the_allowed_lateness_plus_one() -> None:
    window, _ = feed(
        [
            (f"2024-02-03 {h:02d}:{m:02d}:00", (h * 60 + m) / 100)
            for h in range(5)
            for m in range(60)
        ]
    )
    assert len(window.ts_us) == 62
    assert window.ts_us[1] == us("2024-02-03 03:59:00")


# ---- properties -------------------------------------------------------------------------

START = us("2024-02-01 00:00:00")
intervals = st.tuples(
    st.integers(0, 60 * 24 * 40).map(lambda m: START + m * MINUTE + 17),
    st.integers(1, 3 * 24 * 3600 * 10**6),
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 5000, allow_nan=False),
)


@given(intervals)
@settings(max_examples=300, deadline=None)
def test_pieces_sum_to_the_rise_and_stay_inside_one_period(interval) -> None:
    t0, length, rise, e0 = interval
    pieces = split_at_half_hours("S", t0, e0, t0 + length, e0 + rise, TARIFF)
    assert math.isclose(sum(p.kwh for p in pieces), (e0 + rise) - e0, rel_tol=1e-9, abs_tol=1e-9)
    for p in pieces:
        assert p.kwh >= 0 and p.cost_eur >= 0
        assert p.period_start_us % HALF_HOUR_US == 0
        band = TARIFF.band_at(p.period_start_us)
        assert (p.band, p.price) == (band.name, band.price)
        assert p.cost_eur == pytest.approx(p.kwh * band.price)
    starts = [p.period_start_us for p in pieces]
    assert starts == sorted(set(starts))
    assert starts[0] <= t0 < starts[0] + HALF_HOUR_US
    assert starts[-1] < t0 + length <= starts[-1] + HALF_HOUR_US


def _series(draw_steps: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Plausible readings: the power stays under 10 kW (no implausible jump)."""
    t, e, out = START, 1000.0, []
    for gap_s, load in draw_steps:
        t += gap_s * 10**6
        e = round(e + load * gap_s * 10 / 3600, 3)
        out.append((t, e))
    return out


steps = st.lists(st.tuples(st.integers(1, 1800), st.floats(0, 1)), min_size=2, max_size=60)


def _messages(series: list[tuple[int, float]], order: list[int]) -> pd.DataFrame:
    from datetime import UTC, datetime

    rows = []
    for offset, i in enumerate(order):
        ts, energy = series[i]
        stamp = datetime.fromtimestamp(ts / 1e6, UTC).isoformat()
        value = f'{{"timestamp": "{stamp}", "sensor_id": "S", "energy": {energy}}}'.encode()
        rows.append(
            {
                "key": b"S",
                "value": value,
                "topic": "t",
                "partition": 0,
                "offset": offset,
                "kafka_ts_us": None,
            }
        )
    return pd.DataFrame(rows)


SILVER = SilverRules(ZONE, 0, 10**18, 3600 * 10**6, 50.0, TARIFF)


def _net(frames: list[pd.DataFrame]) -> dict[int, float]:
    pieces = pd.concat(frames)
    pieces = pieces[pieces["kind"] == "piece"]
    return {int(k): v for k, v in pieces.groupby("period_start_us")["kwh"].sum().items()}


def _run(messages: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    window, frames, start = Window(), [], 0
    for cut in [*sorted(set(cuts)), len(messages)]:
        if cut <= start:  # Spark never calls the step with no rows
            continue
        frames.append(judge_messages("S", messages.iloc[start:cut], window, SILVER, 0))
        start = cut
    return frames


def _assert_same(a: dict[int, float], b: dict[int, float]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-9)


@given(steps, st.lists(st.integers(0, 60), max_size=5))
@settings(max_examples=100, deadline=None)
def test_how_the_stream_is_cut_into_batches_changes_nothing(draw_steps, cuts) -> None:
    messages = _messages(_series(draw_steps), list(range(len(draw_steps))))
    whole = _run(messages, [])
    cut = _run(messages, [c for c in cuts if c < len(messages)])
    pd.testing.assert_frame_equal(
        pd.concat(whole).reset_index(drop=True), pd.concat(cut).reset_index(drop=True)
    )


@given(steps, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_arrival_order_within_the_lateness_changes_no_answer(
    draw_steps, rnd: random.Random
) -> None:
    series = _series(draw_steps)
    order = list(range(len(series)))
    # shuffle locally: a reading may arrive after later ones, but never after
    # one more than the allowed lateness (1 h) newer than itself
    for i in range(len(order) - 1, 0, -1):
        j = rnd.randint(max(0, i - 3), i)
        order[i], order[j] = order[j], order[i]
    latest = -1
    for i in order:
        if latest >= 0 and series[i][0] < series[latest][0] - 3600 * 10**6:
            return  # this shuffle went beyond the lateness: not what this property is about
        latest = max(latest, i, key=lambda k: series[k][0] if k >= 0 else -1)
    sorted_net = _net(_run(_messages(series, list(range(len(series)))), []))
    shuffled_net = _net(_run(_messages(series, order), []))
    _assert_same(sorted_net, shuffled_net)
    assert all(v >= -1e-12 for v in shuffled_net.values())


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Europe/Lisbon"])
def test_the_machine_time_zone_changes_nothing(tz: str) -> None:
    series = [(START + i * 7 * MINUTE, 1000.0 + i * 0.05) for i in range(300)]
    reference = _net(_run(_messages(series, list(range(300))), []))
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        _assert_same(reference, _net(_run(_messages(series, list(range(300))), [])))
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_a_late_reading_is_judged_against_its_successor_too() -> None:
    # 100.0 at 12:00 and 101.0 at 12:30 (2 kW); then 100.0 at 12:29 arrives late:
    # fine against 12:00, but +1 kWh in the minute to 12:30 is 60 kW > 50 kW.
    window, (_, _, late) = feed(
        [("2024-02-06 12:00:00", 100.0), ("2024-02-06 12:30:00", 101.0),
         ("2024-02-06 12:29:00", 100.0)]
    )  # fmt: skip
    assert not late.accepted and not late.pieces
    assert [f.reason for f in late.flags] == ["implausible_jump"]
    assert "until" in late.flags[0].detail
    assert window.ts_us == [us("2024-02-06 12:00:00"), us("2024-02-06 12:30:00")]


def test_a_batch_is_judged_in_timestamp_order_whatever_its_partitions() -> None:
    # Five readings of one sensor, unkeyed: the later ones sit on partition 0 and
    # come first in Kafka order; judged in time order all five are accepted.
    series = [(us(f"2024-02-06 12:{m:02d}:00"), 100.0 + m / 10) for m in (0, 10, 20, 30, 40)]
    messages = _messages(series, [3, 4, 0, 1, 2])
    messages["partition"] = [0, 0, 1, 1, 2]
    out = _run(messages, [])[0]
    assert (out["kind"] == "reading").sum() == 5 and (out["kind"] == "flag").sum() == 0
    assert sum(_net([out]).values()) == pytest.approx(4.0, abs=1e-12)


def test_equal_timestamps_in_one_batch_keep_the_first_by_partition_then_offset() -> None:
    stamp = us("2024-02-06 12:10:00")
    messages = _messages([(us("2024-02-06 12:00:00"), 100.0), (stamp, 100.3), (stamp, 100.1)],
                         [0, 1, 2])  # fmt: skip
    messages["partition"] = [2, 1, 0]  # the 100.1 reading has the lowest partition
    out = _run(messages, [])[0]
    flags = out[out["kind"] == "flag"]
    assert list(flags["reason"]) == ["conflicting_duplicate"]
    assert list(flags["energy"]) == [100.3]
