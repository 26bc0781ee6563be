"""Small helpers shared by the tests (no fixtures here): the tariff and the zone, Kafka
(topics, raw messages, end offsets), readings files and their messages, Spark tables.
The one home of each: tests/reliability_helpers.py (the pipeline run as a user runs
it, its lake read back), tests/lake_helpers.py (gold-shaped tables written with
delta-rs) and tests/report_lake.py (the report's lake) build on these."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from meterlake.core.config import PROJECT_ROOT
from meterlake.core.tariff import Tariff, load_tariff
from meterlake.tools import publish
from silver.message import parse_timestamp

ZONE = "Europe/Lisbon"
TARIFF_FILE = PROJECT_ROOT / "conf" / "tariff.toml"
TOLERANCE = 1e-9  # kWh and EUR: the pipeline against the oracle


def tariff() -> Tariff:
    return load_tariff(TARIFF_FILE, ZONE)


def us(local: str) -> int:
    """A Lisbon wall-clock (or offset-bearing) timestamp -> µs since the epoch."""
    return parse_timestamp(local, ZONE)


def quiet(_: str) -> None:
    """An `echo` for run_once that prints nothing."""


# --------------------------------------------------------------------------- Kafka


def create_topic(
    bootstrap: str, topic: str, partitions: int = 3, configs: dict[str, str] | None = None
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=configs or {})], timeout_ms=30_000
        )
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    max_request_size: int = 1_048_576,
) -> list[tuple[int, int]]:
    """Send raw (key, value) messages in order with acks=all and wait for every ack;
    their (partition, offset)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_request_size=max_request_size,
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush()
        metadata = [f.get(timeout=60) for f in futures]
    finally:
        producer.close()
    return [(m.partition, m.offset) for m in metadata]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


# --------------------------------------------------------------------------- readings


def reading_lines(path: Path) -> list[tuple[str, str, str]]:
    """A readings file as (timestamp, sensor_id, energy text), in file order."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            ts, sensor, energy = line.split(";")
            rows.append((ts, sensor, energy))
    return rows


def write_readings_file(path: Path, rows: Sequence[tuple[str, str, str | float]]) -> Path:
    """A readings file in the publisher's format, `timestamp;sensor_id;energy` a line."""
    path.write_text("".join(f"{ts};{sensor};{energy}\n" for ts, sensor, energy in rows))
    return path


def reading_value(ts: str, sensor: str, energy: object) -> bytes:
    """A message's JSON value with the energy as given (a number, text, null: what a
    silver rule is tested with), as a producer other than ours might send it."""
    return json.dumps({"timestamp": ts, "sensor_id": sensor, "energy": energy}).encode()


def reading_message(ts: str, sensor: str, energy: str | float) -> tuple[bytes, bytes]:
    """What the publisher sends for a file line: key = sensor id, JSON with a float energy."""
    return publish.reading_message(ts, sensor, float(energy))


# --------------------------------------------------------------------------- Spark


def table_rows(spark, config, table: str, *columns: str) -> list[tuple]:
    df = spark.read.format("delta").load(str(config.table_path(table)))
    return sorted(tuple(row) for row in df.select(*columns).collect())


# --------------------------------------------------------------------------- the clock changes


def clock_change_nights() -> dict[str, tuple[list[tuple[str, float]], dict[str, float]]]:
    """Two meters on naive wall-clock time, a reading a minute, through the nights the
    clocks change in 2024, with the kWh each half hour must get (by its UTC start),
    computed by hand from the rates:

    - `fall_back`, October 27th: 0.6 kW from 00:30 (summer time, 23:30 UTC) through
      the first 01:00-01:59; 1.2 kW through the second 01:00-01:59 (winter time, the
      same wall-clock times again); 0.6 kW to 02:30. Every half hour of the first pass
      gets 0.3 kWh, of the second 0.6 kWh.
    - `spring_forward`, March 31st: 0.6 kW from 00:30 (winter time) to 03:30 (summer
      time); 01:00-01:59 never shows on the wall clock. Every half hour gets 0.3 kWh.
    Registers to the micro-kWh, as a meter's text would have them."""

    def clock(day: str, minutes: range) -> list[str]:
        return [f"{day} {m // 60:02d}:{m % 60:02d}:00" for m in minutes]

    first = clock("2024-10-27", range(30, 120))  # 00:30-01:59, summer time
    second = clock("2024-10-27", range(60, 120))  # 01:00-01:59 again, winter time
    after = clock("2024-10-27", range(120, 151))  # 02:00-02:30
    kwh = [0.01 * m for m in range(len(first))]
    kwh += [kwh[-1] + 0.01 + 0.02 * m for m in range(len(second))]
    kwh += [kwh[-1] + 0.02 + 0.01 * m for m in range(len(after))]
    fall_back = [(t, round(500.0 + e, 6)) for t, e in zip(first + second + after, kwh, strict=True)]
    fall_periods = {"2024-10-26 23:30": 0.3, "2024-10-27 00:00": 0.3, "2024-10-27 00:30": 0.3,
                    "2024-10-27 01:00": 0.6, "2024-10-27 01:30": 0.6, "2024-10-27 02:00": 0.3}
    spring = clock("2024-03-31", range(30, 60)) + clock("2024-03-31", range(120, 211))
    spring_forward = [(t, round(700.0 + 0.01 * m, 6)) for m, t in enumerate(spring)]
    spring_periods = {f"2024-03-31 {h}": 0.3 for h in ("00:30", "01:00", "01:30", "02:00")}
    return {"fall_back": (fall_back, fall_periods), "spring_forward": (spring_forward,
                                                                        spring_periods)}
