"""Gold does not depend on how readings reach silver (semantics §7), against the oracle.

Plausible readings of a few meters (resets and exact repeats included) reach
silver's step in any order the stream can produce within the allowed lateness:
delayed by up to the lateness, spread over three partitions, cut into
micro-batches anywhere. Gold built from the step's pieces must equal the
oracle's answers for the same readings in timestamp order. No Spark: the step
is plain Python (silver.judge), called as Spark calls it, one sensor per call.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlake.core.config import load_config
from oracle import compute_answers
from silver.judge import SilverRules, judge_messages
from silver.meter import Window
from tests.helpers import ZONE, reading_value, tariff
from tests.reliability_helpers import ANSWER_KEYS

LATENESS_US = 3600 * 10**6
SILVER = SilverRules(ZONE, 0, 10**18, LATENESS_US, 50.0, tariff())
START_US = int(datetime(2024, 2, 5, 21, 0, tzinfo=UTC).timestamp()) * 10**6  # crosses midnight
PARTITIONS = 3


@st.composite
def meters(draw) -> list[tuple[str, int, float]]:
    """In-order readings of 1-3 meters: (sensor, µs, kWh), every interval under 50 kW."""
    out = []
    for sensor in draw(st.sampled_from(["A", "AB", "ABC"])):
        t, e = START_US, draw(st.floats(0, 90_000, allow_nan=False))
        for _ in range(draw(st.integers(1, 30))):
            kind = draw(st.sampled_from(["step"] * 8 + ["edge", "repeat", "reset"]))
            if kind == "repeat" and out and out[-1][0] == sensor:
                out.append(out[-1])
                continue
            if kind == "edge":  # the next half-hour boundary exactly
                t += 1_800_000_000 - t % 1_800_000_000
            else:
                t += draw(st.integers(1, 2400)) * 10**6
            hours = (t - out[-1][1]) / 3.6e9 if out and out[-1][0] == sensor else 0
            if kind == "reset":
                e = draw(st.floats(0, 10, allow_nan=False))
            else:
                e += draw(st.floats(0, 49.0)) * hours
            out.append((sensor, t, e))
    return out


def _message(sensor: str, ts_us: int, energy: float, partition: int, offset: int) -> dict:
    stamp = datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat()
    value = reading_value(stamp, sensor, energy)
    return {"key": None, "value": value, "topic": "t", "partition": partition,
            "offset": offset, "kafka_ts_us": None}  # fmt: skip


def arrive(readings: list[tuple[str, int, float]], rnd: random.Random, cuts: int) -> list:
    """The readings as the stream may deliver them: each delayed by less than the
    lateness, sent without a key (a random partition each), cut into batches."""
    arrival = sorted(readings, key=lambda r: r[1] + rnd.randrange(LATENESS_US))
    offsets = [0] * PARTITIONS
    messages = []
    for sensor, ts, energy in arrival:
        p = rnd.randrange(PARTITIONS)
        messages.append(_message(sensor, ts, energy, p, offsets[p]))
        offsets[p] += 1
    ends = sorted({rnd.randrange(1, len(messages) + 1) for _ in range(cuts)} | {len(messages)})
    batches, start = [], 0
    for end in ends:
        batch = messages[start:end]
        rnd.shuffle(batch)  # Spark's rows of a batch come in no promised order
        batches.append(batch)
        start = end
    return batches


def stream_gold(batches: list[list[dict]]) -> dict[str, dict]:
    """Silver's step over the batches (state carried between them), then gold's sums."""
    windows: dict[str, Window] = defaultdict(Window)
    frames = []
    for batch in batches:
        by_sensor: dict[str, list[dict]] = defaultdict(list)
        for m in batch:
            by_sensor[json.loads(m["value"])["sensor_id"]].append(m)
        for sensor, rows in by_sensor.items():
            frames.append(judge_messages(sensor, pd.DataFrame(rows), windows[sensor], SILVER, 0))
    out = pd.concat(frames)
    pieces = out[out["kind"] == "piece"].copy()
    start = pd.to_datetime(pieces["period_start_us"].astype("int64"), unit="us", utc=True)
    local = start.dt.tz_convert(ZONE)
    pieces["period_start"] = start
    pieces["day"] = local.dt.date
    pieces["month"] = local.dt.date.map(lambda d: d.replace(day=1))
    piece_value = {"energy_kwh": "kwh", "cost_eur": "cost_eur"}
    return {
        table: pieces.groupby(keys)[piece_value[value]].sum().to_dict()
        for table, (keys, value) in ANSWER_KEYS.items()
    }


def oracle_gold(readings: list[tuple[str, int, float]], folder: Path) -> dict[str, dict]:
    """The oracle over the readings in timestamp order (a file, as the publisher reads)."""
    path = folder / "in-order.csv"
    lines = []
    for sensor, ts, energy in sorted(readings, key=lambda r: r[1]):
        local = datetime.fromtimestamp(ts / 1e6, UTC).isoformat()
        lines.append(f"{local};{sensor};{energy!r}")
    path.write_text("\n".join(lines))
    result = compute_answers(path, load_config().semantics)
    gold = {}
    for table, (keys, value) in ANSWER_KEYS.items():
        frame = getattr(result, table).copy()
        for key in keys:
            if key in ("month", "day"):
                frame[key] = pd.to_datetime(frame[key]).dt.date
            elif key == "period_start":
                frame[key] = pd.to_datetime(frame[key], utc=True)
        gold[table] = frame.set_index(keys)[value].to_dict()
    return gold


def assert_gold_equal(got: dict[str, dict], want: dict[str, dict]) -> None:
    for table in want:
        assert got[table].keys() == want[table].keys(), table
        for key, value in want[table].items():
            assert got[table][key] == pytest.approx(value, abs=1e-9), (table, key)


@pytest.mark.slow(minutes=0.2)  # many examples: in make test, not test-unit
@given(readings=meters(), rnd=st.randoms(use_true_random=False), cuts=st.integers(0, 6))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_gold_equals_the_in_order_oracle_whatever_the_arrival(
    readings, rnd: random.Random, cuts: int, tmp_path_factory
) -> None:
    folder = tmp_path_factory.mktemp("order")
    assert_gold_equal(stream_gold(arrive(readings, rnd, cuts)), oracle_gold(readings, folder))


def test_the_issue_s_five_readings_unkeyed_in_one_batch(tmp_path: Path) -> None:
    # One sensor, five readings; published without a key they reach the batch
    # partition by partition (16:15 first: in that order 15:00 would be 75 min
    # late). Hand-computed: each half hour gets the rise of the readings inside it.
    minute = 60 * 10**6
    t0 = START_US - 6 * 3600 * 10**6  # 2024-02-05 15:00, Lisbon = UTC in February
    readings = [("A", t0 + m * minute, e) for m, e in
                [(0, 1000.0), (10, 1007.0), (30, 1015.0), (60, 1035.0), (75, 1042.5)]]  # fmt: skip
    messages = [_message(*readings[i], p, o) for i, p, o in
                [(4, 0, 0), (2, 0, 1), (0, 1, 0), (3, 1, 1), (1, 2, 0)]]  # fmt: skip
    gold = stream_gold([messages])
    halfhours = {k[1].strftime("%H:%M"): v for k, v in gold["halfhour_energy"].items()}
    assert halfhours == pytest.approx({"15:00": 15.0, "15:30": 20.0, "16:00": 7.5}, abs=1e-9)
    assert_gold_equal(gold, oracle_gold(readings, tmp_path))
