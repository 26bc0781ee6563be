"""Rules 1-5: one message -> a reading or the reason it is rejected."""

from __future__ import annotations

import json

import pytest

from silver.message import MessageRules, Reading, Rejection, parse_message, parse_timestamp
from tests.helpers import ZONE, us

RULES = MessageRules(ZONE, min_ts_us=us("2000-01-01 00:00:00"), max_ts_us=us("2030-01-01 00:00:00"))


def message(**fields: object) -> bytes:
    base = {"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1234.567}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_a_good_message_becomes_a_reading() -> None:
    assert parse_message(message(), RULES) == Reading("A", us("2024-02-01 00:00:24"), 1234.567)


def test_integer_energy_is_a_number() -> None:
    assert parse_message(message(energy=100), RULES) == Reading(
        "A", us("2024-02-01 00:00:24"), 100.0
    )


def test_an_extra_field_is_ignored() -> None:
    assert isinstance(parse_message(message(unit="kWh"), RULES), Reading)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"", "malformed_json"),
        (None, "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[1, 2, 3]", "malformed_json"),
        (b'"a string"', "malformed_json"),
        (
            b'{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1, "energy": 2}',
            "malformed_json",
        ),
        (message(timestamp=...), "missing_field"),
        (message(sensor_id=None), "missing_field"),
        (message(energy=...), "missing_field"),
        (message(sensor_id=""), "bad_sensor_id"),
        (message(sensor_id="   "), "bad_sensor_id"),
        (message(sensor_id=7), "bad_sensor_id"),
        (message(sensor_id="A\x00B"), "bad_sensor_id"),
        (message(sensor_id="x" * 65), "bad_sensor_id"),
        (message(timestamp="yesterday"), "bad_timestamp"),
        (message(timestamp=1706745624), "bad_timestamp"),
        (message(timestamp="1970-01-01 00:00:00"), "bad_timestamp"),
        (message(timestamp="2100-01-01 00:00:00"), "bad_timestamp"),
        (message(timestamp="2024-02-30 00:00:00"), "bad_timestamp"),
        (message(timestamp="20240201T000024"), "bad_timestamp"),  # ISO basic format
        (message(timestamp="2024-02-01 00:00"), "bad_timestamp"),  # no seconds
        (message(timestamp="2024-02-01T00:00:24,5"), "bad_timestamp"),  # comma fraction
        (message(sensor_id="A\u0085B"), "bad_sensor_id"),  # C1 control character
        (message(energy="12.5"), "bad_energy"),
        (message(energy=True), "bad_energy"),
        (message(energy=-0.001), "bad_energy"),
        (message(energy=[1]), "bad_energy"),
        (b'{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": NaN}', "bad_energy"),
        (
            b'{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": Infinity}',
            "bad_energy",
        ),
        (b'{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1e400}', "bad_energy"),
    ],
)
def test_each_rule_names_its_reason(value: bytes | None, reason: str) -> None:
    result = parse_message(value, RULES)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_the_first_failing_rule_wins() -> None:
    result = parse_message(message(timestamp="nope", energy=-1), RULES)
    assert isinstance(result, Rejection) and result.reason == "bad_timestamp"


def test_a_sql_looking_or_unicode_sensor_id_is_just_a_name() -> None:
    for sensor in ("'; DROP TABLE silver; --", "medidor-ção-⚡"):
        assert parse_message(message(sensor_id=sensor), RULES) == Reading(
            sensor, us("2024-02-01 00:00:24"), 1234.567
        )


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-02-01 00:00:24", "2024-02-01T00:00:24+00:00"),  # winter: Lisbon = UTC
        ("2024-07-01 12:00:00", "2024-07-01T11:00:00+00:00"),  # summer: UTC+1
        ("2024-07-01T12:00:00.250", "2024-07-01T11:00:00.250+00:00"),
        ("2024-07-01T12:00:00+02:00", "2024-07-01T10:00:00+00:00"),
        ("2024-07-01T10:00:00Z", "2024-07-01T10:00:00+00:00"),
        ("2024-07-01T12:00:00+0200", "2024-07-01T10:00:00+00:00"),
        ("2024-07-01T12:00:00.123456789", "2024-07-01T11:00:00.123456+00:00"),
        # the repeated October hour: the first occurrence (summer time)
        ("2024-10-27 01:30:00", "2024-10-27T00:30:00+00:00"),
        # the skipped March hour: the offset before the switch
        ("2024-03-31 01:30:00", "2024-03-31T01:30:00+00:00"),
    ],
)
def test_timestamps_are_lisbon_wall_clock_unless_they_carry_an_offset(text: str, utc: str) -> None:
    assert parse_timestamp(text, ZONE) == parse_timestamp(utc, "UTC")
