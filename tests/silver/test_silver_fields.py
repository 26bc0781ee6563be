"""Silver reads the publishers' own message form in the JVM (silver.job.with_fields):
for every such message it must give what Python's parse_message gives, including the
hours the clocks change, or leave the message to Python."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import pytest

from silver.job import with_fields
from silver.message import (
    CANONICAL,
    MessageRules,
    Reading,
    parse_message,
    read_canonical,
    repeat_after_us,
)
from tests.helpers import reading_value as _message

ZONE = "Europe/Lisbon"
RULES = MessageRules(ZONE, min_ts_us=-(2**62), max_ts_us=2**62)


def _timestamps() -> list[str]:
    """Every minute of the two nights the clocks change in 2024 (a skipped and a
    repeated hour), seconds off, a leap day, and dates and times that do not exist."""
    out = []
    for night in (datetime(2024, 3, 30, 23), datetime(2024, 10, 26, 23)):
        out += [(night + timedelta(minutes=m, seconds=m % 7)).strftime("%Y-%m-%d %H:%M:%S")
                for m in range(0, 5 * 60)]
    # ISO 8601: a T, fractions of a second (Python truncates beyond microseconds: six
    # digits at most are the JVM's), offsets, also across the changes.
    out += [f"{d}T{t}" for d, t in (x.split(" ") for x in out[::7])]
    out += [f"2024-10-27T01:{m:02d}:0{m % 10}{z}" for m in range(0, 60, 7)
            for z in ("Z", "+00:00", "+01:00", "-03:30", ".5+01:00")]
    out += ["2024-02-01 10:00:00.1", "2024-02-01T10:00:00.123456", "2024-03-31T01:30:00.25",
            "2024-02-01 10:00:00.000001Z", "2024-03-31 01:30:00+00:00",
            "2024-02-29T23:59:59.999999+14:00", "2024-02-01 10:00:00.1234567",
            "2024-02-01T10:00:00+1:00", "2024-02-01T10:00:00+0100"]
    out += ["2024-02-29 12:00:00", "1000-01-01 00:00:00", "2999-12-31 23:59:59",
            "2023-02-29 12:00:00", "2024-02-30 00:00:00", "2024-13-01 00:00:00",
            "2024-01-01 24:00:00", "2024-01-01 23:60:00", "2024-01-01 23:59:60",
            "2024-00-10 10:00:00"]
    return out


def _energies(rng: random.Random) -> list:
    return [0, 5, 100.0, 0.1, 1e-7, 123456789012345.0, 0.30000000000000004,
            *(rng.uniform(0, 1e6) for _ in range(20)), *(rng.randrange(10**12) for _ in range(5))]


def test_the_jvm_reads_the_publishers_form_as_python_does(spark) -> None:
    rng = random.Random(5)
    energies = _energies(rng)
    values = [_message(ts, rng.choice(["A", "S01", "meter-7.b:x", "a" * 64]),
                       rng.choice(energies)) for ts in _timestamps()]
    values += [  # not the form: left to Python
        b'{"sensor_id": "A", "timestamp": "2024-01-01 10:00:00", "energy": 1.0}',
        b'{"timestamp":"2024-01-01 10:00:00","sensor_id":"A","energy":1.0}',
        _message("2024-01-01T10:00", "A", 1.0), _message("2024-01-01 10:00:00+01", "A", 1),
        _message("2024-01-01 10:00:00", "A", -1.0), _message("2024-01-01 10:00:00", "A", 1e300),
        _message("2024-01-01 10:00:00", "A", "1.0"), _message("2024-01-01 10:00:00", "A b", 1.0),
        _message("2024-01-01 10:00:00", "a" * 65, 1.0), _message("0999-01-01 10:00:00", "A", 1),
        b'{"timestamp": "2024-01-01 10:00:00", "sensor_id": "A", "energy": 1.0, "x": 1}',
        b'{"timestamp": "2024-01-01 10:00:00", "sensor_id": "\xff", "energy": 1.0}',
    ]
    rows = (
        spark.createDataFrame([(v,) for v in values], "value BINARY")
        .transform(with_fields)
        .select("value", "sensor_key", "fast_ts_us", "fast_energy", "fast_naive")
        .collect()
    )
    assert len(rows) == len(values)
    read = 0
    for row in rows:
        python = parse_message(bytes(row["value"]), RULES)
        if row["fast_ts_us"] is None or row["fast_energy"] is None:
            continue
        read += 1
        # A naive time of the repeated hour: both read its first occurrence, and the
        # step learns from fast_naive that a second one exists (silver.bucket).
        repeat = repeat_after_us(ZONE, row["fast_ts_us"]) if row["fast_naive"] else 0
        assert python == Reading(row["sensor_key"], row["fast_ts_us"], row["fast_energy"],
                                 repeat), row
        # Outside the rules' range the JVM's fields defer to Python, which names why.
        narrow = MessageRules(ZONE, min_ts_us=python.ts_us + 1, max_ts_us=2**62)
        assert read_canonical(row["sensor_key"], row["fast_ts_us"], 1.0, narrow) is None
    # The pattern matches in Java as in Python; of those, the JVM reads all but the
    # dates and times that do not exist (7).
    in_form = sum(1 for v in values if re.match(CANONICAL, v.decode("utf-8", "replace")))
    assert in_form > 500
    assert read == in_form - 7
    repeated = [r for r in rows if r["fast_naive"] and r["fast_ts_us"] is not None
                and repeat_after_us(ZONE, r["fast_ts_us"])]
    assert len(repeated) > 60  # October's first 01:xx, naive, in both forms
    not_the_form = rows[len(_timestamps()):]
    assert all(r["fast_ts_us"] is None for r in not_the_form)
    assert [r["sensor_key"] for r in not_the_form[:3]] == ["A", "A", "A"]  # still grouped


@pytest.mark.parametrize("text", ["2024-02-30 00:00:00", "2024-01-01 24:00:00"])
def test_a_time_that_does_not_exist_is_left_to_python(spark, text: str) -> None:
    row = (spark.createDataFrame([(_message(text, "A", 1.0),)], "value BINARY")
           .transform(with_fields).first())
    assert row["fast_ts_us"] is None and row["fast_energy"] is None
    assert parse_message(_message(text, "A", 1.0), RULES).reason == "bad_timestamp"
