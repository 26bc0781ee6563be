"""The publisher: message format, line parsing, pacing, and a real broker round trip."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kafka import KafkaConsumer, KafkaProducer

from meterlake.app.cli import main
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.kafkaclient import client_settings
from meterlake.core.net import free_port
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import (
    BadLine,
    ensure_broker_reachable,
    is_header,
    parse_line,
    publish_file,
    publish_readings,
    reading_message,
    replay_offset,
)

LISBON = ZoneInfo("Europe/Lisbon")


def consume(config: Config, expected: int, timeout_s: float = 30.0) -> list:
    """Every message of the config's topic, from the start (waits for `expected`)."""
    consumer = KafkaConsumer(
        config.kafka.topic, bootstrap_servers=config.kafka.bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=500).values():  # nothing more should come
            records.extend(batch)
    finally:
        consumer.close()
    return records


# ---- pure parts -------------------------------------------------------------------------


def test_a_reading_is_keyed_by_sensor_with_the_classroom_json_value() -> None:
    key, value = reading_message("2024-02-01 00:00:24", "A", 1234.567)
    assert key == b"A"
    assert value == b'{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1234.567}'


def test_energy_is_always_a_json_float() -> None:
    _, value = reading_message("2024-02-01 00:00:00", "S01", 0)
    assert b'"energy": 0.0' in value
    assert isinstance(json.loads(value)["energy"], float)


def test_a_line_parses_with_or_without_its_line_ending() -> None:
    for line in ("2024-02-01 00:00:24;S01;1234.500", "2024-02-01 00:00:24;S01;1234.500\r\n"):
        reading = parse_line(line, LISBON)
        assert (reading.timestamp, reading.sensor_id, reading.energy) == (
            "2024-02-01 00:00:24", "S01", 1234.5,
        )
        assert reading.at == datetime(2024, 2, 1, 0, 0, 24)


def test_a_timestamp_with_an_offset_is_paced_in_local_time() -> None:
    reading = parse_line("2024-07-01T12:00:00Z;A;1", LISBON)
    assert reading.timestamp == "2024-07-01T12:00:00Z"  # sent as written
    assert reading.at == datetime(2024, 7, 1, 13, 0, 0)  # summer time, UTC+1


@pytest.mark.parametrize(
    "line, reason",
    [
        ("2024-02-01 00:00:24;A", "expected 3 fields"),
        ("2024-02-01 00:00:24;A;1;2", "expected 3 fields"),
        ("2024-02-01 00:00:24,A,1.5", "expected 3 fields"),
        ("01/02/2024 00:00:24;A;1.5", "timestamp"),
        ("2024-02-30 00:00:24;A;1.5", "timestamp"),
        ("2024-02-01;A;1.5", "timestamp"),
        ("2024-02-01 00:00:24;;1.5", "empty sensor id"),
        ("2024-02-01 00:00:24;  ;1.5", "empty sensor id"),
        ("2024-02-01 00:00:24;A;", "not a number"),
        ("2024-02-01 00:00:24;A;12,5", "not a number"),
        ("2024-02-01 00:00:24;A;nan", "not a finite number"),
        ("2024-02-01 00:00:24;A;inf", "not a finite number"),
        ("2024-02-01 00:00:24;\udcff;1", "UTF-8"),
    ],
)
def test_a_malformed_line_says_why(line: str, reason: str) -> None:
    with pytest.raises(BadLine, match=reason):
        parse_line(line, LISBON)


def test_the_header_line_is_recognised() -> None:
    assert is_header("timestamp;sensor_id;energy\n")
    assert is_header("Timestamp; Sensor_ID; Energy\r\n")
    assert not is_header("2024-02-01 00:00:24;A;1.5")


def test_replay_offset_divides_event_time_by_the_speedup() -> None:
    first = datetime(2024, 2, 1, 0, 0, 0)
    assert replay_offset(datetime(2024, 2, 1, 1, 0, 0), first, 60) == 60.0
    assert replay_offset(first, first, 60) == 0.0


def test_kafka_properties_become_kafka_python_keywords(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-value"
    client = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="meter" password="{secret}";'
        ),
        "ssl.cafile": "/etc/ca.pem",
        "ssl.endpoint.identification.algorithm": "",
        "request.timeout.ms": "5000",
        "ssl.truststore.location": "/etc/truststore.jks",
    }
    with caplog.at_level(logging.WARNING, logger="meterlake"):
        settings = client_settings(client, KafkaProducer.DEFAULT_CONFIG)
    assert settings == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "meter",
        "sasl_plain_password": secret,
        "ssl_cafile": "/etc/ca.pem",
        "ssl_check_hostname": False,
        "request_timeout_ms": 5000,
    }
    assert "ssl.truststore.location" in caplog.text
    assert secret not in caplog.text and "truststore.jks" not in caplog.text


# ---- with the broker --------------------------------------------------------------------


def test_a_generated_day_round_trips_through_the_broker(
    kafka: str, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "day.csv"
    count = write_readings(MonthSpec(meters=3, days=1, seed=11), path)
    lines = path.read_text().splitlines()

    result = publish_readings(config, lines, speedup=0, progress=False)

    assert (result.sent, result.skipped) == (count, 0)
    records = consume(config, count)
    assert len(records) == count
    expected: dict[str, list[dict]] = {}
    for line in lines:
        ts, sensor, energy = line.split(";")
        expected.setdefault(sensor, []).append(
            {"timestamp": ts, "sensor_id": sensor, "energy": float(energy)}
        )
    got: dict[str, list[dict]] = {}
    partitions: dict[str, set[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        value = json.loads(record.value)
        assert record.key == value["sensor_id"].encode()
        assert isinstance(value["timestamp"], str) and isinstance(value["energy"], float)
        got.setdefault(value["sensor_id"], []).append(value)
        partitions.setdefault(value["sensor_id"], set()).add(record.partition)
    assert got == expected  # per sensor, in file order
    assert all(len(p) == 1 for p in partitions.values())


def test_the_topic_is_created_with_the_configured_partitions(kafka: str, config: Config) -> None:
    config = replace(config, kafka=replace(config.kafka, partitions=5))
    publish_readings(config, ["2024-02-01 00:00:00;A;1.0"], speedup=0, progress=False)
    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap)
    try:
        assert consumer.partitions_for_topic(config.kafka.topic) == set(range(5))
    finally:
        consumer.close()


def test_a_second_publish_to_an_existing_topic_appends(kafka: str, config: Config) -> None:
    line = "2024-02-01 00:00:00;A;1.0"
    publish_readings(config, [line], speedup=0, progress=False)
    publish_readings(config, [line], speedup=0, progress=False)
    assert len(consume(config, 2)) == 2


def test_pacing_follows_the_timestamps_divided_by_the_speedup(
    kafka: str, config: Config
) -> None:
    lines = [f"2024-02-01 00:00:{6 * i:02d};A;{100 + i}.0" for i in range(10)]
    lines.append("2024-02-01 00:01:00;A;110.0")  # 60 s of readings

    began = time.monotonic()
    result = publish_readings(config, lines, speedup=30, progress=False)
    elapsed = time.monotonic() - began

    assert result.sent == 11
    assert 1.5 <= elapsed <= 6.0  # 60 s / 30 = 2 s, plus connecting
    assert len(consume(config, 11)) == 11


def test_malformed_lines_are_reported_skipped_and_counted(kafka: str, config: Config) -> None:
    lines = [
        "",  # blank: ignored silently
        "timestamp;sensor_id;energy",  # a header: skipped silently
        "2024-02-01 00:00:00;A;1.0",
        "",  # blank: ignored silently
        "2024-02-01 00:01:00;A",
        "2024-02-01 00:02:00;A;lots",
        "not a timestamp;A;1.0",
        "2024-02-01 00:03:00;;1.0",
        "2024-02-01 00:04:00;A;2.0\r\n",
        "timestamp;sensor_id;energy",  # a header after the data is a bad line
    ]
    reports: list[str] = []

    result = publish_readings(
        config, lines, speedup=0, source="f.csv", report=reports.append, progress=False
    )

    assert (result.sent, result.skipped) == (2, 5)
    assert [r.split(": skipped")[0] for r in reports] == [
        "f.csv:5", "f.csv:6", "f.csv:7", "f.csv:8", "f.csv:10",
    ]
    values = [json.loads(r.value) for r in consume(config, 2)]
    assert [v["energy"] for v in values] == [1.0, 2.0]


def test_a_flood_of_bad_lines_is_counted_but_reported_only_at_first(
    kafka: str, config: Config
) -> None:
    lines = ["garbage"] * 50 + ["2024-02-01 00:00:00;A;1.0"]
    reports: list[str] = []

    result = publish_readings(config, lines, speedup=0, report=reports.append, progress=False)

    assert (result.sent, result.skipped) == (1, 50)
    assert len(reports) == 21 and "further unparseable lines" in reports[-1]


def test_a_classroom_file_replays_unchanged(kafka: str, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "data-sorted.csv"
    path.write_text(
        "2024-02-01 00:00:24;A;1234.5\n2024-02-01 00:00:24;B;0\n2024-02-01 00:00:53;A;1234.512\n"
    )

    result = publish_file(config, path, speedup=0)

    assert result.sent == 3
    records = sorted(consume(config, 3), key=lambda r: (r.key, r.offset))
    assert [(r.key, json.loads(r.value)) for r in records] == [
        (b"A", {"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1234.5}),
        (b"A", {"timestamp": "2024-02-01 00:00:53", "sensor_id": "A", "energy": 1234.512}),
        (b"B", {"timestamp": "2024-02-01 00:00:24", "sensor_id": "B", "energy": 0.0}),
    ]


def test_the_command_prints_a_one_line_summary(
    kafka: str, config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("2024-02-01 00:00:24;A;1.5\nbroken\n2024-02-01 00:01:24;A;1.6\n")

    code = main([
        "publish", "--filename", str(path), "--speedup", "0",
        "--bootstrap", config.kafka.bootstrap, "--topic", config.kafka.topic,
    ])

    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith(f"published 2 readings to {config.kafka.topic} in ")
    assert out.rstrip().endswith("; 1 line skipped") and out.count("\n") == 1
    assert f"{path}:2: skipped: expected 3 fields" in err



@pytest.mark.kafka  # waits out the client's connect timeout
def test_an_unreachable_broker_is_one_clear_error_not_a_hang(config: Config) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    config = replace(config, kafka=replace(config.kafka, bootstrap=bootstrap))

    began = time.monotonic()
    with pytest.raises(MeterlakeError, match=f"not reachable at {bootstrap}"):
        publish_readings(config, ["2024-02-01 00:00:00;A;1.0"], speedup=0, progress=False)
    assert time.monotonic() - began < 12


def test_the_reachability_check_passes_for_a_running_broker(kafka: str, config: Config) -> None:
    ensure_broker_reachable(config)  # an unreachable one fails as in the test above


def test_a_missing_file_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    with pytest.raises(MeterlakeError, match="not found"):
        publish_file(config, tmp_path / "nope.csv", speedup=0)


def test_a_negative_speedup_is_refused(config: Config) -> None:
    with pytest.raises(MeterlakeError, match="speedup"):
        publish_readings(config, [], speedup=-1, progress=False)
