"""Many meters in one call (silver.bucket) judge as one meter per call does.

judge_bucket takes the messages of every meter of a hash bucket and their windows
as columns; judge_messages, one meter at a time, is the reference. Both must give
the same rows (to the bit, in any order) and leave the same windows, however the
meters' batches mix runs with late readings, duplicates, jumps, falls, junk and
new meters, and however the stream is cut into batches.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from silver.bucket import Windows, judge_bucket, judge_buckets
from silver.judge import NO_SENSOR, judge_messages
from silver.meter import Window
from silver.stored import STORED, decode
from tests.helpers import reading_value
from tests.silver.test_judge_runs import NOW_US, RULES, local, streams

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ORDER = ["kind", "sensor_id", "ts_us", "sign", "period_start_us", "interval_start_us",
         "reason", "partition", "offset"]  # fmt: skip


def message(sensor: str | None, reading: tuple[int, float] | None, partition: int, offset: int,
            fast: bool) -> dict:  # fmt: skip
    """A Kafka row as silver.job.judged hands it to the step; fast: the JVM read its
    fields (silver.job.with_fields), else Python parses the value."""
    if reading is None:
        value = b"not json"
    else:
        ts, energy = reading
        stamp = (EPOCH + timedelta(microseconds=ts)).isoformat()  # the instant, exactly
        value = reading_value(stamp, sensor, energy)
    return {
        "sensor_key": sensor if reading is not None else NO_SENSOR,
        "key": None, "value": value, "topic": "t", "partition": partition, "offset": offset,
        "kafka_ts_us": 1_706_745_600_000_000,
        "fast_ts_us": reading[0] if fast and reading else None,
        "fast_energy": reading[1] if fast and reading else None, "fast_naive": None,
    }  # fmt: skip


def frame(rows: list[dict]) -> pd.DataFrame:
    columns = list(message("S", (0, 0.0), 0, 0, True))
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({"fast_ts_us": "Int64", "fast_energy": "float64"})


def from_spark(messages: pd.DataFrame, horizon_us: int | None = None) -> pd.DataFrame:
    """Messages as silver.job.judged hands them to the Spark function: not ticks, and,
    with a release horizon, that horizon on the first (bronze.horizon)."""
    rows = messages.assign(is_tick=False, released_before_us=np.nan)
    if horizon_us is not None and len(rows):
        rows.loc[rows.index[0], "released_before_us"] = horizon_us
    return rows


def tick(horizon_us: int) -> pd.DataFrame:
    """The tick each bucket gets from a bronze commit's horizon row (silver.job.judged)."""
    rows = frame([message("S", (0, 0.0), 0, 0, True)])
    return rows.assign(is_tick=True, released_before_us=float(horizon_us))


def canonical(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(ORDER, kind="stable", na_position="first").reset_index(drop=True)


def by_meter(batch: pd.DataFrame, windows: dict[str, Window]) -> pd.DataFrame:
    """The reference: judge_messages once per sensor key, as Spark called it before."""
    parts = [
        judge_messages(key, group.drop(columns="sensor_key"), windows.setdefault(key, Window()),
                       RULES, NOW_US)
        for key, group in batch.groupby("sensor_key", sort=False)
    ]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def assert_same_rows(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    ours, reference = canonical(ours), canonical(reference)
    pd.testing.assert_frame_equal(ours, reference, check_exact=True)
    for name in ("energy", "price", "kwh", "cost_eur"):
        assert ours[name].to_numpy().tobytes() == reference[name].to_numpy().tobytes(), name


def judge_both(batches: list[pd.DataFrame]) -> list[pd.DataFrame]:
    windows = Windows.empty()
    reference: dict[str, Window] = {}
    out = []
    for batch in batches:
        ours, windows = judge_bucket(batch, windows, RULES, NOW_US)
        assert_same_rows(ours, by_meter(batch, reference))
        assert windows.as_dict() == {s: w for s, w in reference.items() if w.ts_us}
        windows = Windows.unpack(*windows.pack())  # as the state store hands it back
        out.append(ours)
    return out


@pytest.mark.slow(minutes=0.2)  # many examples: in make test, not test-unit
@given(st.lists(streams(), min_size=1, max_size=5), st.randoms(use_true_random=False),
       st.lists(st.integers(0, 300), max_size=3))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_a_bucket_judges_as_one_meter_at_a_time(meters, rnd, cuts) -> None:
    rows, offsets = [], [0, 0, 0]
    tagged = [(f"M{n}", r) for n, stream in enumerate(meters) for r in stream]
    # Interleaved by meter, each meter's own order kept but for a few late ones.
    keyed = sorted(enumerate(tagged), key=lambda x: x[0] + rnd.choice([0] * 6 + [3, 40]))
    for _, (sensor, reading) in keyed:
        partition = rnd.randrange(3)
        offsets[partition] += 1
        rows.append(message(sensor, reading, partition, offsets[partition], rnd.random() < 0.7))
    batch = frame(rows)
    bounds = sorted({0, len(batch), *(c for c in cuts if c < len(batch))})
    judge_both([batch.iloc[a:b] for a, b in pairwise(bounds)])


def test_two_meters_in_one_call_by_hand() -> None:
    # A: stored 100.0 at 08:50; reads 100.6 at 09:10 (0.3 kWh in cheias 08:30, 0.3 in
    # ponta 09:00, the spec's worked example). B: new, two readings 23:40 and 00:20 the
    # next day, 0.8 kWh: 0.4 in each day's period (vazio). C is untouched.
    a0, a1 = local("2024-02-05 08:50:00"), local("2024-02-05 09:10:00")
    b0, b1 = local("2024-02-03 23:40:00"), local("2024-02-04 00:20:00")
    c0 = local("2024-02-05 07:00:00")
    stored = Windows.of({"A": Window([a0], [100.0]), "C": Window([c0], [5.0])})
    batch = frame([message("B", (b1, 200.8), 1, 7, True), message("A", (a1, 100.6), 0, 3, True),
                   message("B", (b0, 200.0), 0, 4, False)])  # fmt: skip
    rows, windows = judge_bucket(batch, stored, RULES, NOW_US)
    pieces = canonical(rows[rows["kind"] == "piece"])
    assert list(pieces["sensor_id"]) == ["A", "A", "B", "B"]
    assert list(pieces["period_start_us"]) == [
        local("2024-02-05 08:30:00"), local("2024-02-05 09:00:00"),
        local("2024-02-03 23:30:00"), local("2024-02-04 00:00:00"),
    ]  # fmt: skip
    assert np.allclose(pieces["kwh"], [0.3, 0.3, 0.4, 0.4], rtol=0, atol=1e-9)
    assert list(pieces["band"]) == ["cheias", "ponta", "vazio", "vazio"]
    assert np.isclose(pieces["cost_eur"][:2].sum(), 0.12423, rtol=0, atol=1e-12)
    assert sorted(rows.loc[rows["kind"] == "reading", "sensor_id"]) == ["A", "B", "B"]
    assert windows.as_dict() == {
        "A": Window([a0, a1], [100.0, 100.6]),
        "B": Window([b0, b1], [200.0, 200.8]),
        "C": Window([c0], [5.0]),
    }


def test_a_late_reading_sends_only_its_meter_to_the_one_at_a_time_path() -> None:
    # A's 09:00 reading falls between its stored 08:50 and 09:10: the interval is
    # retracted (-0.6 over both periods) and its two halves added. B's batch is a run.
    a = [local("2024-02-05 08:50:00"), local("2024-02-05 09:10:00")]
    b0 = local("2024-02-05 12:00:00")
    stored = Windows.of({"A": Window(a, [100.0, 100.6]), "B": Window([b0], [7.0])})
    batch = frame([message("A", (local("2024-02-05 09:00:00"), 100.3), 0, 1, True),
                   message("B", (b0 + 300 * 10**6, 7.5), 0, 2, True)])  # fmt: skip
    rows, windows = judge_bucket(batch, stored, RULES, NOW_US)
    a_pieces = rows[(rows["kind"] == "piece") & (rows["sensor_id"] == "A")]
    assert sorted(a_pieces["sign"]) == [-1, -1, 1, 1]
    assert abs(a_pieces["kwh"].sum()) < 1e-12  # the same 0.6 kWh, now split at 09:00
    assert windows.as_dict()["A"].ts_us == [a[0], local("2024-02-05 09:00:00"), a[1]]
    assert windows.as_dict()["B"].energy == [7.0, 7.5]


class _State:
    """The state handle applyInPandasWithState passes (the calls the step makes)."""

    def __init__(self, value: tuple | None = None) -> None:
        self.exists, self.value = value is not None, value

    @property
    def get(self) -> tuple:
        return self.value

    def update(self, value: tuple) -> None:
        self.exists, self.value = True, value


def test_the_spark_function_keeps_the_bucket_in_one_state_row() -> None:
    t0 = local("2024-02-05 10:00:00")
    step = judge_buckets(RULES, hold=False)
    state = _State()
    first = from_spark(frame([message(s, (t0, 1.0), 0, n, True) for n, s in enumerate("XY")]))
    (out,) = step((3,), [first.iloc[:1], first.iloc[1:]], state)
    rows = decode(out["rows"])  # one value for the call: its rows with the stored columns
    assert len(out) == 1 and rows.schema == STORED
    assert sorted(rows["sensor_id"].to_pylist()) == ["X", "Y"]
    assert Windows.unpack(*state.value[:4]).as_dict() == {"X": Window([t0], [1.0]),
                                                          "Y": Window([t0], [1.0])}  # fmt: skip
    junk = from_spark(frame([message(None, None, 0, 9, False)]))
    (out,) = step((3,), [junk], state)
    assert decode(out["rows"])["reason"].to_pylist() == ["malformed_json"]
    assert Windows.unpack(*state.value[:4]).as_dict()["X"] == Window([t0], [1.0])


def test_windows_survive_packing() -> None:
    windows = Windows.of({"a:b.c-d_1": Window([1, 2], [0.5, 0.75]), "Z": Window([3], [1e9])})
    again = Windows.unpack(*windows.pack())
    assert again.as_dict() == windows.as_dict()
    assert Windows.unpack(*Windows.empty().pack()).as_dict() == {}


def test_random_fleet_in_one_call_matches_the_reference() -> None:
    # 300 meters, 4 readings each in a batch, a quarter of them with a stored window;
    # a few meters get a late or duplicated reading.
    rnd = random.Random(5)
    t0 = local("2024-02-05 00:00:00")
    stored, rows = {}, []
    for m in range(300):
        sensor, e = f"m{m:04d}", rnd.uniform(0, 5000)
        readings = [(t0 + (k * 900 + rnd.randrange(5)) * 10**6, e + k * 0.2) for k in range(5)]
        if m % 4 == 0:
            stored[sensor] = Window([readings[0][0]], [readings[0][1]])
        batch_readings = readings[1:]
        if m % 37 == 0:
            batch_readings.append(readings[2])  # a duplicate
        if m % 41 == 0:
            batch_readings.append((readings[1][0] + 10**6, readings[1][1] + 0.01))  # late
        for reading in batch_readings:
            rows.append(message(sensor, reading, rnd.randrange(3), len(rows), rnd.random() < 0.9))
    rnd.shuffle(rows)
    windows = Windows.of(stored)
    reference = dict(windows.as_dict())
    ours, _ = judge_bucket(frame(rows), windows, RULES, NOW_US)
    assert_same_rows(ours, by_meter(frame(rows), reference))
