"""Small helpers shared by the tests (no fixtures here)."""

from __future__ import annotations

from pathlib import Path

from meterlake.core.config import PROJECT_ROOT
from silver.message import parse_timestamp
from silver.tariff import Tariff, load_tariff

ZONE = "Europe/Lisbon"
TARIFF_FILE = PROJECT_ROOT / "conf" / "tariff.toml"


def tariff() -> Tariff:
    return load_tariff(TARIFF_FILE, ZONE)


def us(local: str) -> int:
    """A Lisbon wall-clock (or offset-bearing) timestamp -> µs since the epoch."""
    return parse_timestamp(local, ZONE)


def write_lines(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text("".join(f"{ts};{sensor};{energy}\n" for ts, sensor, energy in rows))
    return path


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Send raw (key, value) messages to Kafka, in order, and wait for every ack."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def reading_message(ts: str, sensor: str, energy: float) -> tuple[bytes, bytes]:
    import json

    value = json.dumps({"timestamp": ts, "sensor_id": sensor, "energy": energy})
    return sensor.encode(), value.encode()


def table_rows(spark, config, table: str, *columns: str) -> list[tuple]:
    df = spark.read.format("delta").load(str(config.table_path(table)))
    return sorted(tuple(row) for row in df.select(*columns).collect())
