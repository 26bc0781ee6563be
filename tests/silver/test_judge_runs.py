"""Runs of in-order readings (silver.runs) judge as silver.meter.judge does.

judge_messages takes a run of readings that follow the sensor's latest one through
numpy, everything else through the scalar judge. Both must give the same frame, to
the bit, and leave the same window, however a batch mixes runs with late readings,
duplicates, jumps and decreases, and however the stream is cut into batches.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from itertools import accumulate, pairwise
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import silver.judge
from meterlake.core.config import load_config
from meterlake.core.tariff import HALF_HOUR_US
from silver.job import silver_rules
from silver.judge import judge_messages
from silver.message import parse_timestamp
from silver.meter import Window, trim
from tests.helpers import reading_value

RULES = silver_rules(load_config())  # the configured zone, limits and tariff
NOW_US = parse_timestamp("2030-01-01 00:00:00", RULES.zone)
SECOND = 10**6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = 3600 * SECOND


def local(text: str) -> int:
    return parse_timestamp(text, RULES.zone)


# A winter midnight and the two nights of 2024 the clocks change in Lisbon.
NIGHTS = [local("2024-02-03 23:10:00"), local("2024-03-31 00:05:00"), local("2024-10-27 00:05:00")]


def messages(readings: list[tuple[int, float] | None], seed: int = 0) -> pd.DataFrame:
    """Kafka rows of sensor S in this order, over three partitions; None is a message
    that is not JSON. Every third message leaves its fields to Python (no fast_*)."""
    rng, rows, offsets = random.Random(seed), [], [0, 0, 0]
    for n, reading in enumerate(readings):
        partition = rng.randrange(3)
        offsets[partition] += 1
        fast = reading is not None and n % 3 != 2
        if reading is None:
            value = b"not json"
        else:
            ts, energy = reading
            stamp = (EPOCH + timedelta(microseconds=ts)).isoformat()  # the instant, exactly
            value = reading_value(stamp, "S", energy)
        rows.append({
            "key": b"S", "value": value, "topic": "t", "partition": partition,
            "offset": offsets[partition], "kafka_ts_us": 1_706_745_600_000_000,
            "fast_ts_us": reading[0] if fast else None,
            "fast_energy": reading[1] if fast else None,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.astype({"fast_ts_us": "Int64", "fast_energy": "float64"})


def assert_same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    """Equal frames, and the floats equal to the bit."""
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    for name in ("energy", "price", "kwh", "cost_eur"):
        assert fast[name].to_numpy().tobytes() == slow[name].to_numpy().tobytes(), name


def judge_both(batches: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each batch through both paths, a window each carried from batch to batch."""
    fast_window, slow_window, frames = Window(), Window(), []
    for batch in batches:
        fast = judge_messages("S", batch, fast_window, RULES, NOW_US)
        slow = judge_messages("S", batch, slow_window, RULES, NOW_US, runs=False)
        assert_same(fast, slow)
        assert fast_window == slow_window
        frames.append(fast)
    return frames


@pytest.fixture
def runs(monkeypatch) -> list[int]:
    """The length of every run judged in numpy."""
    lengths: list[int] = []
    judge_run = silver.judge.judge_run

    def spy(window, sensor_id, ts_us, energy, rules):
        lengths.append(len(ts_us))
        return judge_run(window, sensor_id, ts_us, energy, rules)

    monkeypatch.setattr(silver.judge, "judge_run", spy)
    return lengths


def test_two_readings_across_a_half_hour_edge_split_by_hand(runs, monkeypatch) -> None:
    # 0.5 kWh over 08:57-09:07: 3 of the 10 minutes in the cheias period 08:30, 7 in
    # the ponta period 09:00.
    monkeypatch.setattr(silver.judge, "MIN_RUN", 1)  # two readings make a run
    t0, t1 = local("2024-02-05 08:57:00"), local("2024-02-05 09:07:00")
    (frame,) = judge_both([messages([(t0, 100.0), (t1, 100.5)])])
    assert runs == [2]
    assert list(frame["kind"]) == ["reading", "reading", "piece", "piece"]
    pieces = frame[frame["kind"] == "piece"]
    half_hours = [local("2024-02-05 08:30:00"), local("2024-02-05 09:00:00")]
    assert list(pieces["period_start_us"]) == half_hours
    assert list(pieces["kwh"]) == [0.15, 0.35]
    assert list(pieces["band"]) == ["cheias", "ponta"]
    assert list(pieces["cost_eur"]) == [0.15 * 0.1741, 0.35 * 0.24]
    assert list(pieces["interval_start_us"]) == [t0, t0]
    assert list(pieces["interval_end_us"]) == list(pieces["ts_us"]) == [t1, t1]


def test_a_month_in_order_is_one_run(runs) -> None:
    rng = np.random.default_rng(7)
    ts = local("2024-02-01 00:00:07") + np.arange(8640) * 300 * SECOND
    energy = 1000 + np.cumsum(rng.random(8640) * 0.2)
    judge_both([messages(list(zip(ts.tolist(), energy.tolist(), strict=True)))])
    assert runs == [8640]


@st.composite
def streams(draw) -> list[tuple[int, float] | None]:
    """One meter's readings in the order they reach silver: mostly in order, a few
    seconds either side of half-hour edges, and the events a run must stop at."""
    t = draw(st.sampled_from(NIGHTS)) + draw(st.integers(-3600, 3600)) * SECOND
    e = draw(st.floats(0, 90_000))
    out: list[tuple[int, float] | None] = [(t, e)]
    for _ in range(draw(st.integers(0, 80))):
        event = draw(st.sampled_from(
            ["step"] * 16 + ["edge"] * 4
            + ["limit", "jump", "decrease", "late", "duplicate", "conflict", "junk"]
        ))  # fmt: skip
        earlier = [r for r in out if r is not None]
        if event == "junk":
            out.append(None)
        elif event == "duplicate":
            out.append(draw(st.sampled_from(earlier)))
        elif event == "conflict":
            ts, energy = draw(st.sampled_from(earlier))
            out.append((ts, energy + 0.5))
        elif event == "late":  # within the lateness or beyond it (too_late)
            ts, energy = draw(st.sampled_from(earlier))
            out.append((ts - draw(st.integers(1, 5400)) * SECOND, max(energy - 0.1, 0.0)))
        else:
            t0 = t
            if event == "edge":
                t += HALF_HOUR_US - t % HALF_HOUR_US + draw(st.integers(-5, 5)) * SECOND
            else:
                t += draw(st.sampled_from([300, 300, 1, 7, 1799, 1801, 3 * 3600])) * SECOND
            t = max(t, t0 + SECOND)
            hours = (t - t0) / HOUR
            if event == "limit":  # just plausible, or just not: as judge rounds
                e += RULES.max_power_kw * hours
            elif event == "jump":  # rejected: the baseline stays
                out.append((t, e + RULES.max_power_kw * hours + 0.01))
                continue
            elif event == "decrease":  # by the least a float can, or more
                fall = draw(st.sampled_from([0.0, 0.001, 0.5, 10.0]))
                e = max(e - fall if fall else math.nextafter(e, -1.0), 0.0)
            else:
                e += draw(st.floats(0, 20)) * hours
            out.append((t, e))
    return out


@given(streams(), st.randoms(use_true_random=False), st.lists(st.integers(0, 90), max_size=3),
       st.sampled_from([1, 2, silver.judge.MIN_RUN]))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_runs_judge_as_one_reading_at_a_time_does(stream, rnd, cuts, min_run) -> None:
    # Some messages arrive a few places late: across a cut, a late reading for silver.
    order = sorted(range(len(stream)), key=lambda i: i + rnd.choice([0] * 6 + [3, 12]))
    batch = messages([stream[i] for i in order], rnd.randrange(100))
    bounds = sorted({0, len(batch), *(c for c in cuts if c < len(batch))})
    with patch.object(silver.judge, "MIN_RUN", min_run):
        judge_both([batch.iloc[a:b] for a, b in pairwise(bounds)])


@given(
    st.lists(st.integers(1, 2 * HOUR), min_size=1, max_size=40),
    st.integers(0, 40),
    st.integers(0, 3 * HOUR),
)
@settings(max_examples=200, deadline=None)
def test_trimming_once_after_a_run_leaves_what_trimming_after_each_reading_does(
    gaps, cut, lateness
) -> None:
    ts = list(accumulate(gaps))
    each, once = Window(), Window()
    for n, t in enumerate(ts):
        for window in (each, once) if n < cut else (each,):
            window.ts_us.append(t)
            window.energy.append(float(n))
            trim(window, lateness)
    once.ts_us.extend(ts[cut:])
    once.energy.extend(float(n) for n in range(cut, len(ts)))
    trim(once, lateness)
    assert once == each
