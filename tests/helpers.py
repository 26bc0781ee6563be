"""Small helpers shared by the tests (no fixtures here)."""

from __future__ import annotations

from pathlib import Path

from meterlake.core.config import PROJECT_ROOT
from meterlake.core.tariff import Tariff, load_tariff
from silver.message import parse_timestamp

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
