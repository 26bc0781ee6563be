"""Inputs for the bench: generated readings, a dedicated broker, topics filled three ways.

- `publish_kafka_python`: the project's publisher (`publish_readings`, speedup 0).
- `publish_confluent`: the same messages through confluent-kafka (librdkafka), when
  installed (an optional bench dependency, see bench/requirements.txt).
- `bulk_publish`: a Spark batch job writing the same messages (same key, same JSON
  fields and numbers) to Kafka. Not a publisher we measure against anything: only
  a fast way to fill topics of millions of readings for the catch-up figures.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.core.config import Config
from meterlake.core.net import free_port
from meterlake.tools.generate import MonthSpec, write_readings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)



def bench_config(base: Config, results: Path) -> Config:
    """The dedicated broker (home under results/, free ports) and Spark settings."""
    broker = replace(
        base.broker, home=results / "kafka", port=free_port(), controller_port=free_port(),
        heap="768m",
    )
    kafka = replace(base.kafka, bootstrap=f"{broker.host}:{broker.port}")
    # Keep every progress report of a query (the default is the last 100).
    keep_progress = {"spark.sql.streaming.numRecentProgressUpdates": "100000"}
    # The bench's one JVM runs every phase (inputs of 7.2M readings, the Spark batch
    # baselines, every progress report kept): a 2 GB heap, as in the runs before
    # 2026-12-07. The shipped 1 GB is what the own-process memory figure runs.
    spark = replace(base.spark, driver_memory="2g",
                    conf={**base.spark.conf, **keep_progress})
    return replace(base, broker=broker, kafka=kafka, spark=spark, lake=results / "lakes" / "none")


def with_topic(config: Config, topic: str) -> Config:
    return replace(config, kafka=replace(config.kafka, topic=topic))


def with_lake(config: Config, lake: Path) -> Config:
    return replace(config, lake=lake)


def fresh_topic(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:6]}"


def readings_file(data_dir: Path, spec: MonthSpec) -> tuple[Path, int]:
    """Generate (or reuse) the readings of spec; returns the file and its line count."""
    name = f"m{spec.meters}-d{spec.days}-c{int(spec.cadence_s)}-s{spec.seed}.txt"
    path = data_dir / name
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return path, count
    tmp = path.with_suffix(".tmp")
    count = write_readings(spec, tmp)
    tmp.rename(path)
    return path, count


def span_file(data_dir: Path, meters: int, hours: float, seed: int = 42) -> tuple[Path, int]:
    """The first `hours` of a generated month of `meters` meters (60 s cadence), reused
    when already generated; returns the file and its line count."""
    import math

    from meterlake.tools.generate import Readings, format_lines, month_readings

    label = f"{hours:g}".replace(".", "p")
    path = data_dir / f"m{meters}-h{label}-c60-s{seed}.txt"
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return path, count
    spec = MonthSpec(meters=meters, days=max(1, math.ceil(hours / 24)), seed=seed)
    month = month_readings(spec)
    keep = month.second < round(hours * 3600)
    lines = format_lines(Readings(month.sensor_ids, month.start, month.second[keep],
                                  month.meter[keep], month.energy_wh[keep]))
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(path)
    return path, len(lines)


def next_day(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def count_before(path: Path, day: str) -> int:
    """The readings of a file before `day` (YYYY-MM-DD)."""
    prefix = day.encode()
    with path.open("rb") as f:
        return sum(1 for line in f if line[:10] < prefix)


def day_slice(path: Path, day: str, out: Path) -> Path:
    """The readings of `day` (YYYY-MM-DD) from path, in time order (paced publishing
    sends a file line by line), written to out."""
    with path.open(encoding="utf-8") as f:
        lines = sorted(line for line in f if line.startswith(day))
    out.write_text("".join(lines))
    return out


def last_readings(path: Path, zone: str) -> dict[str, int]:
    """Each sensor's latest reading time (µs since the epoch) in a readings file."""
    from silver.message import parse_timestamp

    latest: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            ts, sensor, _ = line.rstrip("\n").split(";")
            if ts > latest.get(sensor, ""):
                latest[sensor] = ts
    return {s: parse_timestamp(ts, zone) for s, ts in latest.items()}


def delete_topic(config: Config) -> None:
    """Free the broker's disk once a big topic has been measured."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=config.kafka.bootstrap, client_id="bench-admin")
    try:
        admin.delete_topics([config.kafka.topic])
    except Exception as exc:  # best effort
        log.warning("could not delete topic %s: %s", config.kafka.topic, exc)
    finally:
        admin.close()


def bulk_publish(
    spark: SparkSession, config: Config, path: Path, first_day: str | None = None,
    end_day: str | None = None,
) -> int:
    """Write the readings of path (optionally only days [first_day, end_day)) to the topic
    with a Spark batch job: key = sensor id, value = the publisher's JSON. Each sensor's
    readings go through one task in file order, so Kafka order per sensor is time order."""
    from pyspark.sql import functions as F

    from meterlake.tools.publish import ensure_topic

    ensure_topic(config.kafka)
    lines = (
        spark.read.option("sep", ";")
        .schema("ts STRING, sensor_id STRING, energy STRING")
        .csv(str(path.resolve()))
    )
    if first_day:
        lines = lines.filter(F.col("ts") >= F.lit(first_day))
    if end_day:
        lines = lines.filter(F.col("ts") < F.lit(end_day))
    value = F.concat(
        F.lit('{"timestamp": "'), F.col("ts"), F.lit('", "sensor_id": "'), F.col("sensor_id"),
        F.lit('", "energy": '), F.col("energy").cast("double").cast("string"), F.lit("}"),
    )
    messages = (
        lines.repartition(config.kafka.partitions * 2, "sensor_id")
        .sortWithinPartitions("sensor_id", "ts")
        .select(F.col("sensor_id").alias("key"), value.alias("value"))
    )
    messages = messages.persist()
    count = messages.count()
    (
        messages.write.format("kafka")
        .option("kafka.bootstrap.servers", config.kafka.bootstrap)
        .option("kafka.acks", "all")
        .option("kafka.enable.idempotence", "true")
        .option("kafka.linger.ms", "50")
        .option("kafka.batch.size", str(512 * 1024))
        .option("topic", config.kafka.topic)
        .save()
    )
    messages.unpersist()
    return count


def publish_kafka_python(config: Config, path: Path) -> dict:
    """The project's publisher at speedup 0: readings/s and client CPU per reading."""
    from meterlake.tools.publish import publish_readings

    cpu0, wall0 = time.process_time(), time.monotonic()
    with path.open(encoding="utf-8") as lines:
        result = publish_readings(config, lines, 0, source=str(path), progress=False)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {
        "sent": result.sent, "seconds": round(result.seconds, 3),
        "rate": round(result.sent / result.seconds, 1),
        "client_cpu_us_per_reading": round(cpu / max(result.sent, 1) * 1e6, 2),
        "wall_with_setup_s": round(wall, 3),
    }


def confluent_available() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def publish_confluent(config: Config, path: Path) -> dict:
    """The same messages (parse_line + reading_message, key = sensor) through confluent-kafka,
    with the publisher's reliability and batching settings (acks=all, idempotent, gzip,
    linger 100 ms)."""
    from zoneinfo import ZoneInfo

    from confluent_kafka import KafkaException, Producer

    from meterlake.tools.publish import BadLine, ensure_topic, parse_line, reading_message

    ensure_topic(config.kafka)
    zone = ZoneInfo(config.semantics.zone)
    producer = Producer({
        "bootstrap.servers": config.kafka.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 100,
        "batch.size": 512 * 1024,
        "compression.type": "gzip",
        "queue.buffering.max.messages": 1_000_000,
    })
    failed = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(err)

    topic = config.kafka.topic
    sent = 0
    cpu0, began = time.process_time(), time.monotonic()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                reading = parse_line(line, zone)
            except BadLine:
                continue
            key, value = reading_message(reading.timestamp, reading.sensor_id, reading.energy)
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent % 10_000 == 0:
                producer.poll(0)
    if producer.flush(60) != 0 or failed:
        raise KafkaException(f"confluent-kafka: {len(failed)} readings not delivered")
    seconds = time.monotonic() - began
    cpu = time.process_time() - cpu0
    return {
        "sent": sent, "seconds": round(seconds, 3), "rate": round(sent / seconds, 1),
        "client_cpu_us_per_reading": round(cpu / max(sent, 1) * 1e6, 2),
    }


def spec_label(spec: MonthSpec, count: int) -> str:
    return f"{spec.meters} meters x {spec.days} d @ {spec.cadence_s:.0f} s ({count:,} readings)"


__all__ = [
    "bench_config",
    "bulk_publish",
    "confluent_available",
    "delete_topic",
    "fresh_topic",
    "last_readings",
    "publish_confluent",
    "publish_kafka_python",
    "readings_file",
    "span_file",
    "spec_label",
    "with_lake",
    "with_topic",
]
