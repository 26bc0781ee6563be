"""Meters on naive wall-clock time through the nights the clocks change.

October's repeated hour: a naive 01:xx names two instants; the register places each
reading (silver.meter.place_repeated, and the oracle by the same rule). March's
skipped hour: the wall clock jumps from 00:59 to 02:00. Every reading is accepted
and every half hour gets what the rates give, by hand (tests.helpers), whether the
night comes in one batch or cut into many, read by the JVM or by Python.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pandas as pd
import pytest

from oracle import compute_answers
from silver.bucket import Windows, judge_bucket
from silver.message import parse_timestamp
from tests.helpers import ZONE, clock_change_nights, reading_value, write_readings_file
from tests.silver.test_judge_runs import NOW_US, RULES

NIGHTS = clock_change_nights()


def frame(sensor: str, rows: list[tuple[str, float]], jvm: bool, seed: int = 0) -> pd.DataFrame:
    """The night's messages as silver.job.judged hands them over: fields read by the JVM
    (a naive time as its first occurrence, fast_naive) or left to Python."""
    rnd = random.Random(seed)
    out = []
    for n, (ts, energy) in enumerate(rows):
        value = reading_value(ts, sensor, energy)
        out.append({
            "sensor_key": sensor, "key": None, "value": value, "topic": "t",
            "partition": rnd.randrange(3), "offset": n, "kafka_ts_us": 0,
            "fast_ts_us": parse_timestamp(ts, ZONE) if jvm else None,
            "fast_energy": energy if jvm else None, "fast_naive": True if jvm else None,
        })  # fmt: skip
    return pd.DataFrame(out).astype({"fast_ts_us": "Int64", "fast_energy": "float64"})


def periods(rows: pd.DataFrame) -> dict[str, float]:
    """kWh per half hour (its UTC start, 'YYYY-MM-DD HH:MM'), pieces summed."""
    sums: dict[str, float] = defaultdict(float)
    for start, kwh in zip(rows["period_start_us"], rows["kwh"], strict=True):
        at = datetime.fromtimestamp(int(start) / 1e6, UTC).strftime("%Y-%m-%d %H:%M")
        sums[at] += kwh
    return dict(sums)


@pytest.mark.parametrize("night", sorted(NIGHTS))
@pytest.mark.parametrize("batch", [10_000, 17, 1])
@pytest.mark.parametrize("jvm", [True, False])
def test_every_reading_of_the_night_is_placed_and_each_half_hour_exact(night, batch, jvm):
    rows, expected = NIGHTS[night]
    messages = frame(night, rows, jvm)
    windows, out = Windows.empty(), []
    for start in range(0, len(messages), batch):
        judged, windows = judge_bucket(messages.iloc[start:start + batch], windows, RULES, NOW_US)
        out.append(judged)
    judged = pd.concat(out)
    assert judged[judged["kind"] == "flag"].empty
    assert (judged["kind"] == "reading").sum() == len(rows)
    got = periods(judged[judged["kind"] == "piece"])
    assert got.keys() == expected.keys()
    for period, kwh in expected.items():
        assert got[period] == pytest.approx(kwh, abs=1e-9), period


@pytest.mark.parametrize("night", sorted(NIGHTS))
def test_the_oracle_places_the_night_the_same_way(tmp_path, night) -> None:
    rows, expected = NIGHTS[night]
    path = write_readings_file(tmp_path / "night.csv", [(ts, night, e) for ts, e in rows])
    oracle = compute_answers(path)
    assert oracle.quarantine_counts == {}
    got = {p.strftime("%Y-%m-%d %H:%M"): kwh for p, kwh in
           zip(oracle.halfhour_energy["period_start"], oracle.halfhour_energy["energy_kwh"],
               strict=True)}  # fmt: skip
    assert got == pytest.approx(expected, abs=1e-9)


def test_a_repeated_time_the_register_cannot_place_is_ambiguous_time(tmp_path) -> None:
    # A flat register: 01:10 again with the same 5.0 kWh may be the second 01:10 with
    # nothing used, or the first one sent twice. 01:30 with 5.5 after 01:40 showed 5.2
    # is the second 01:30.
    rows = [("2024-10-27 01:10:00", 5.0), ("2024-10-27 01:20:00", 5.0),
            ("2024-10-27 01:40:00", 5.2), ("2024-10-27 01:10:00", 5.0),
            ("2024-10-27 01:30:00", 5.5)]  # fmt: skip
    judged, windows = judge_bucket(frame("F", rows, jvm=True), Windows.empty(), RULES, NOW_US)
    flags = judged[judged["kind"] == "flag"]
    assert list(flags["reason"]) == ["ambiguous_time"]
    assert windows.as_dict()["F"].ts_us == [  # the last hour, and the one before it
        parse_timestamp("2024-10-27T01:20:00+01:00", ZONE),
        parse_timestamp("2024-10-27T01:40:00+01:00", ZONE),
        parse_timestamp("2024-10-27T01:30:00+00:00", ZONE),  # the second 01:30
    ]
    path = write_readings_file(tmp_path / "flat.csv", [(ts, "F", e) for ts, e in rows])
    assert compute_answers(path).quarantine_counts == {"ambiguous_time": 1}
