"""Poison and drift (issue 7, item 4): about 1% hostile messages in a stream of good ones.

Every hostile message lands in the quarantine with its raw bytes, its Kafka
coordinates and a reason code; none reaches silver; gold equals the oracle's
answers for the good readings alone; the stream never stops. Sensor ids that
look hostile but are valid (unicode, SQL-looking, quotes) are ordinary sensors
and must come out intact, in gold and in the views.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta

import pandas as pd
import pytest

from meterlake.app.pipeline import run_once
from meterlake.read.answers import query_view
from meterlake.tools.generate import MonthSpec, write_readings
from oracle import compute_answers
from silver.message import MessageRules, parse_message
from tests.helpers import (
    create_topic,
    produce,
    quiet,
    reading_lines,
    reading_message,
    write_readings_file,
)
from tests.reliability_helpers import assert_gold_equals_oracle, frame

SPEC = MonthSpec(meters=4, days=2, cadence_s=120, seed=5)
MAX_MESSAGE = 3 * 1024 * 1024  # the topic and the producer accept the 1 MB payloads
# Valid, if unusual, sensor ids: they are sensors like any other (no ';' in them,
# the readings file's separator).
ODD_SENSORS = ["Zoë-電表-⚡", "' OR 1=1 --", "x') DROP TABLE silver --", 'q"uote', "s01"]
TS = "2024-02-01 12:00:00"


def _json(**fields) -> bytes:
    return json.dumps(fields).encode()


def standalone_poison(rng: random.Random) -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, reason) of hostile messages that need no sensor history."""
    megabyte = 1024 * 1024
    poison = [
        (None, b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S01", "energy": 1.0',
         "malformed_json"),
        (None, b"not json at all", "malformed_json"),
        (None, rng.randbytes(64), "malformed_json"),
        (None, rng.randbytes(megabyte), "malformed_json"),  # 1 MB of binary garbage
        (None, b"\x00" * 16, "malformed_json"),
        (b"S01", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S\x0001", "energy": 1}',
         "malformed_json"),  # a raw NUL inside a JSON string
        (None, b"", "malformed_json"),
        (b"S01", None, "malformed_json"),  # a tombstone: no value at all
        (None, b"[1, 2, 3]", "malformed_json"),
        (None, b'"a string"', "malformed_json"),
        (None, b"42", "malformed_json"),
        (None, b"null", "malformed_json"),
        (None, b"[" * 100_000 + b"]" * 100_000, "malformed_json"),  # nested too deep
        (b"S02", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S02", "energy": 1, '
         b'"energy": 2}', "malformed_json"),
        (b"S02", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S02", '
         b'"sensor_id": "S03", "energy": 2}', "malformed_json"),
        (b"S01", _json(timestamp=TS, sensor_id="S01"), "missing_field"),
        (b"S01", _json(timestamp=None, sensor_id="S01", energy=1.0), "missing_field"),
        (None, _json(timestamp=TS, energy=1.0), "missing_field"),
        (None, _json(timestamp=TS, sensor_id="", energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="   ", energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id=42, energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id=["S01"], energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="é" * 65, energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="bell\u0007", energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="nul\u0000", energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="M" * megabyte, energy=1.0), "bad_sensor_id"),
        (None, _json(timestamp=TS, sensor_id="'; DROP TABLE gold; --\n", energy=1.0),
         "bad_sensor_id"),
        (b"S03", _json(timestamp="1970-01-01 00:00:00", sensor_id="S03", energy=1.0),
         "bad_timestamp"),
        (b"S03", _json(timestamp="2100-01-01 00:00:00", sensor_id="S03", energy=1.0),
         "bad_timestamp"),
        (b"S03", _json(timestamp=1706788800, sensor_id="S03", energy=1.0), "bad_timestamp"),
        (b"S03", _json(timestamp="2024-02-30 10:00:00", sensor_id="S03", energy=1.0),
         "bad_timestamp"),
        (b"S03", _json(timestamp="2024-02-01T10:00:00+25:00", sensor_id="S03", energy=1.0),
         "bad_timestamp"),
        (b"S03", _json(timestamp="yesterday", sensor_id="S03", energy=1.0), "bad_timestamp"),
        (b"S04", _json(timestamp=TS, sensor_id="S04", energy="12.5"), "bad_energy"),
        (b"S04", _json(timestamp=TS, sensor_id="S04", energy=True), "bad_energy"),
        (b"S04", _json(timestamp=TS, sensor_id="S04", energy=None), "missing_field"),
        (b"S04", _json(timestamp=TS, sensor_id="S04", energy={"kwh": 1}), "bad_energy"),
        (b"S04", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S04", "energy": NaN}',
         "bad_energy"),
        (b"S04", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S04", "energy": Infinity}',
         "bad_energy"),
        (b"S04", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S04", "energy": -Infinity}',
         "bad_energy"),
        (b"S04", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S04", "energy": 1e400}',
         "bad_energy"),
        (b"S04", _json(timestamp=TS, sensor_id="S04", energy=-3.5), "bad_energy"),
    ]
    poison.append((b"S04", b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "S04", '
                   b'"energy": 1' + b"0" * 400 + b"}", "bad_energy"))
    return poison


def _plus_second(ts: str) -> str:
    return (datetime.fromisoformat(ts) + timedelta(seconds=1)).isoformat(sep=" ")


def following_poison(ts: str, sensor: str) -> list[tuple[bytes, bytes, str]]:
    """Hostile messages for a sensor, one second after one of its accepted readings."""
    key, later = sensor.encode(), _plus_second(ts)
    return [
        (key, _json(timestamp=later, sensor_id=sensor, energy=1e15), "implausible_jump"),
        (key, _json(timestamp=later, sensor_id=sensor, energy=1e308), "implausible_jump"),
        # the type of a field drifts mid-stream
        (key, _json(timestamp=later, sensor_id=sensor, energy=str(1.5)), "bad_energy"),
        (key, _json(timestamp=later.replace(" ", "T"), sensor_id=sensor, energy=[1.5]),
         "bad_energy"),
    ]


def odd_sensor_rows(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """A few readings for each odd sensor id, spread over the data's time range."""
    times = [rows[len(rows) * k // 6][0] for k in range(1, 6)]
    return [(ts, sensor, f"{100 + 10 * i + k * 0.25:.3f}")
            for i, sensor in enumerate(ODD_SENSORS) for k, ts in enumerate(times)]


def mixed_stream(rows, rng):
    """The good readings in file order (each sensor's order kept) with ~1% hostile
    messages among them; (key, value, reason or None for a good one)."""
    good = [(*reading_message(*row), None) for row in rows]
    # an extra field: a good reading all the same (schema drift, accepted)
    for i in rng.sample(range(len(rows)), 3):
        ts, sensor, energy = rows[i]
        value = json.dumps({"timestamp": ts, "sensor_id": sensor, "energy": float(energy),
                            "firmware": "2.1", "rssi": -71})
        good[i] = (sensor.encode(), value.encode(), None)
    stream: list = list(good)
    target = len(rows) // 100
    extras = standalone_poison(rng)
    small = [item for item in extras if len(item[1] or b"") < 1000]
    while len(extras) < target - 12:
        extras.append(rng.choice(small))
    for item in extras:
        stream.insert(rng.randrange(len(stream) + 1), item)
    for i in rng.sample(range(len(rows) // 2, len(rows)), 3):  # after a reading of its sensor
        ts, sensor, _ = rows[i]
        where = stream.index(good[i]) + 1
        stream[where:where] = following_poison(ts, sensor)
    return stream


@pytest.mark.slow
def test_hostile_messages_are_quarantined_and_gold_equals_the_oracle_of_the_good_ones(
    spark, kafka, config, tmp_path
):
    generated = tmp_path / "generated.csv"
    write_readings(SPEC, generated)
    rows = reading_lines(generated)
    rows = sorted(rows + odd_sensor_rows(rows), key=lambda r: r[0])  # stable: file order kept
    good_file = write_readings_file(tmp_path / "good.csv", rows)
    oracle = compute_answers(good_file, config.semantics)

    stream = mixed_stream(rows, random.Random(7))
    hostile = [(k, v, reason) for k, v, reason in stream if reason]
    assert 0.009 < len(hostile) / len(stream) < 0.02

    create_topic(kafka, config.kafka.topic, 3, {"max.message.bytes": str(MAX_MESSAGE)})
    coordinates = produce(
        kafka, config.kafka.topic, [(k, v) for k, v, _ in stream], max_request_size=MAX_MESSAGE
    )
    run_once(spark, config, ["bronze", "silver", "gold"], echo=quiet)  # never stops

    bronze = frame(config, 'SELECT "partition", "offset" FROM bronze', ["bronze"])
    assert len(bronze) == len(stream)
    quarantine = frame(
        config,
        'SELECT topic, "partition", "offset", reason, value, sensor_id FROM quarantine',
        ["quarantine"],
    )
    by_coordinate = {(r.partition, r.offset): r for r in quarantine.itertuples()}
    poisoned = set()
    for (key, value, reason), (partition, offset) in zip(stream, coordinates, strict=True):
        if reason is None:
            continue
        poisoned.add((partition, offset))
        row = by_coordinate.get((partition, offset))
        assert row is not None, f"not quarantined: {value[:80]!r}"
        assert row.reason == reason, f"{value[:80]!r}: {row.reason}, expected {reason}"
        assert row.topic == config.kafka.topic
        assert (None if pd.isna(row.value) else bytes(row.value)) == value
    others = Counter(r.reason for r in quarantine.itertuples()
                     if (r.partition, r.offset) not in poisoned)
    assert dict(others) == oracle.quarantine_counts

    readings = frame(config, 'SELECT "partition", "offset", sensor_id FROM readings', ["readings"])
    assert len(readings) == len(oracle.readings)
    assert not set(zip(readings["partition"], readings["offset"], strict=True)) & poisoned
    pieces = frame(config, 'SELECT "partition", "offset" FROM silver', ["silver"])
    assert not set(zip(pieces["partition"], pieces["offset"], strict=True)) & poisoned
    assert set(ODD_SENSORS) <= set(readings["sensor_id"])

    assert_gold_equals_oracle(config, oracle)
    q3 = query_view(config, "q3")
    assert q3.columns[1:] == list(oracle.q3.columns[1:])
    for view in ("q1", "q2", "q4"):
        got = query_view(config, view)
        assert [r[0] for r in got.rows] == list(getattr(oracle, view)["sensor_id"]), view


def test_a_400_digit_integer_energy_is_bad_energy_not_a_crash():
    """float() of a huge JSON integer raises OverflowError: it must be a reason, not a
    crash of the Python worker that would stop the silver stream."""
    rules = MessageRules("Europe/Lisbon", 0, 2**62)
    value = b'{"timestamp": "2024-02-01 12:00:00", "sensor_id": "X", "energy": 1' + b"0" * 400
    assert parse_message(value + b"}", rules).reason == "bad_energy"
