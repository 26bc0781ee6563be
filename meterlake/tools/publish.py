"""Replay a file of readings into Kafka: a drop-in for the classroom publisher.

`publisher.py --filename data-sorted.csv --topic energy --speedup 60` reads
`timestamp;sensor_id;energy` lines and sends each as a JSON message
`{"timestamp": "2024-02-01 00:00:24", "sensor_id": "A", "energy": 1234.567}`,
`speedup` times faster than real time relative to the first line's timestamp.
This one does the same, and also:

- keys every message by its sensor id, so one meter's readings stay in order
  in one partition;
- creates the topic if it is missing (the configured partitions, replication 1);
- uses an idempotent producer (acks=all, retries bounded by a delivery timeout),
  so a retry never duplicates or reorders a reading, and rides out a broker
  restart of a minute or so (it reconnects within a second of the broker's return);
- with `speedup` 0 sends as fast as it can, in large gzip batches (measured
  faster than no compression with kafka-python; see BATCH_SETTINGS);
- reports and skips lines it cannot parse, and counts them;
- fails fast, with one clear error, when the broker cannot be reached.

The timestamp is sent exactly as written in the file; `energy` is the file's
number as a JSON float (`json.dumps(float(text))`: "1234.5" -> 1234.5,
"0" -> 0.0). Pacing uses the file's wall-clock timestamps (a timestamp with
an offset is first converted to the configured zone).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from meterlake.core.config import Config, KafkaConf
from meterlake.core.errors import MeterlakeError
from meterlake.core.kafkaclient import client_settings

log = logging.getLogger(__name__)

HEADER = ("timestamp", "sensor_id", "energy")
TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
CONNECT_TIMEOUT_MS = 8_000  # an unreachable broker is an error after this long
MAX_REPORTED = 20  # unparseable lines shown one by one; the rest only counted
PROGRESS_EVERY = 256  # lines between progress updates when not pacing

RELIABILITY_SETTINGS = {
    "acks": "all",
    "enable_idempotence": True,
    "retries": 2_147_483_647,  # bounded in time by delivery_timeout_ms
    "max_in_flight_requests_per_connection": 5,  # the idempotent maximum: order kept
    "request_timeout_ms": 15_000,
    # Ride out a broker restart (tests/reliability/test_crash.py kills it 3 times for
    # 10-30 s each): kafka-python backs off reconnecting up to 30 s by default, so the
    # batches waiting for a restarted broker expired before it reconnected ("1,086 of
    # 1,720 readings were not delivered"). Retry the connection every second at most,
    # and give each reading two minutes before it counts as not delivered.
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 1_000,
    "delivery_timeout_ms": 120_000,
    "max_block_ms": 60_000,  # send() waits this long for metadata or buffer space
}
# speedup 0: large gzip batches. Measured on 200,000 readings of the default month
# (11 keys, 3 partitions, local broker, a busy 2-core machine), medians of 2 runs:
# gzip 16,200/s and 37 us of client CPU per reading, none 13,500/s and 43 us (the
# uncompressed path costs kafka-python more); snappy, lz4 and zstd need packages
# that are not installed.
BATCH_SETTINGS = {"linger_ms": 100, "batch_size": 512 * 1024, "compression_type": "gzip"}
PACED_SETTINGS = {"linger_ms": 5, "compression_type": None}



class BadLine(ValueError):
    """A line that is not `timestamp;sensor_id;energy`; the message says why."""


@dataclass(frozen=True)
class Reading:
    timestamp: str  # as written in the file
    sensor_id: str
    energy: float
    at: datetime  # naive wall-clock time in the configured zone, for pacing


@dataclass(frozen=True)
class PublishResult:
    sent: int
    skipped: int
    seconds: float
    acked: int = 0  # readings the broker acknowledged (all of them when no error is raised)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def summary(self, topic: str) -> str:
        return (
            f"published {self.sent:,} readings to {topic} in {self.seconds:.1f} s "
            f"({self.rate:,.0f}/s); {self.skipped:,} line{'' if self.skipped == 1 else 's'} skipped"
        )


# ---- pure parts -------------------------------------------------------------------------


def reading_message(timestamp: str, sensor_id: str, energy: float) -> tuple[bytes, bytes]:
    """The Kafka key (the sensor id) and JSON value of one reading."""
    value = {"timestamp": timestamp, "sensor_id": sensor_id, "energy": float(energy)}
    return sensor_id.encode("utf-8"), json.dumps(value).encode("utf-8")


def is_header(line: str) -> bool:
    return tuple(f.strip().lower() for f in line.strip().split(";")) == HEADER


def wall_clock(timestamp: str, zone: ZoneInfo) -> datetime:
    """The naive local time of a file timestamp; BadLine if it is not one."""
    if not TIMESTAMP_SHAPE.match(timestamp):
        raise BadLine(f"timestamp {timestamp!r} is not YYYY-MM-DD HH:MM:SS")
    try:
        at = datetime.fromisoformat(timestamp)
    except ValueError:
        raise BadLine(f"timestamp {timestamp!r} is not a valid date and time") from None
    if at.tzinfo is not None:
        at = at.astimezone(zone).replace(tzinfo=None)
    return at


def parse_line(line: str, zone: ZoneInfo) -> Reading:
    """One `timestamp;sensor_id;energy` line (line ending optional) as a Reading."""
    text = line.rstrip("\r\n")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLine("not valid UTF-8") from None
    fields = text.split(";")
    if len(fields) != 3:
        raise BadLine(f"expected 3 fields separated by ';', found {len(fields)}")
    timestamp, sensor_id, energy_text = fields
    at = wall_clock(timestamp, zone)
    if not sensor_id.strip():
        raise BadLine("empty sensor id")
    try:
        energy = float(energy_text)
    except ValueError:
        raise BadLine(f"energy {energy_text!r} is not a number") from None
    if not math.isfinite(energy):
        raise BadLine(f"energy {energy_text!r} is not a finite number")
    return Reading(timestamp, sensor_id, energy, at)


def replay_offset(at: datetime, first: datetime, speedup: float) -> float:
    """Seconds after the first reading's send at which this one is due."""
    return (at - first).total_seconds() / speedup


def producer_settings(kafka: KafkaConf, speedup: float, known: dict[str, object]) -> dict:
    """Everything the KafkaProducer is built with (client settings win)."""
    mode = PACED_SETTINGS if speedup > 0 else BATCH_SETTINGS
    return {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "client_id": "meterlake-publisher",
        "bootstrap_timeout_ms": CONNECT_TIMEOUT_MS,
        **RELIABILITY_SETTINGS,
        **mode,
        **client_settings(kafka.client, known),
    }


# ---- Kafka ------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every failed connection attempt; we report one error instead."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    if not log.isEnabledFor(logging.DEBUG):
        kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def _not_reachable(kafka: KafkaConf, exc: Exception) -> MeterlakeError:
    return MeterlakeError(
        f"Kafka broker not reachable at {kafka.bootstrap} (no answer within "
        f"{CONNECT_TIMEOUT_MS // 1000} s: {type(exc).__name__}); start the local one with "
        "`meterlake kafka start` or point --bootstrap at yours"
    )


def _admin(kafka: KafkaConf):
    """A KafkaAdminClient, or MeterlakeError if the broker does not answer in time."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    settings = {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "client_id": "meterlake-publisher-admin",
        "bootstrap_timeout_ms": CONNECT_TIMEOUT_MS,
        "request_timeout_ms": 15_000,
        **client_settings(kafka.client, KafkaAdminClient.DEFAULT_CONFIG),
    }
    try:
        with _quiet_kafka_logs():
            return KafkaAdminClient(**settings)
    except (KafkaError, OSError) as exc:
        raise _not_reachable(kafka, exc) from None


def ensure_broker_reachable(config: Config) -> None:
    """MeterlakeError (within CONNECT_TIMEOUT_MS) unless the configured broker answers."""
    _admin(config.kafka).close()


def ensure_topic(kafka: KafkaConf) -> bool:
    """Create the topic (kafka.partitions partitions, replication 1) unless it exists;
    True if it was created."""
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = _admin(kafka)
    try:
        admin.create_topics(
            {kafka.topic: {"num_partitions": kafka.partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        log.info("created topic %s with %d partitions", kafka.topic, kafka.partitions)
        return True
    except TopicAlreadyExistsError:
        return False
    except KafkaError as exc:  # e.g. not authorised on a shared cluster: it may exist
        log.warning("could not create topic %s (%s); publishing anyway", kafka.topic, exc)
        return False
    finally:
        admin.close()


def topic_offsets(kafka: KafkaConf) -> tuple[dict[int, int], dict[int, int]]:
    """(oldest, end) offset of each partition of kafka.topic, as the broker has them."""
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    admin = _admin(kafka)
    try:
        described = admin.describe_topics([kafka.topic])[0]
        parts = [TopicPartition(kafka.topic, p["partition_index"])
                 for p in described["partitions"]]
        oldest, end = (
            {tp.partition: found.offset for tp, found in admin.list_partition_offsets(
                dict.fromkeys(parts, spec)).items()}
            for spec in (OffsetSpec.EARLIEST, OffsetSpec.LATEST)
        )
    finally:
        admin.close()
    return oldest, end


def open_producer(kafka: KafkaConf, speedup: float):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = producer_settings(kafka, speedup, KafkaProducer.DEFAULT_CONFIG)
    try:
        with _quiet_kafka_logs():
            return KafkaProducer(**settings)
    except (KafkaError, OSError) as exc:
        raise _not_reachable(kafka, exc) from None


class _Deliveries:
    """Counts the readings the broker acknowledged and those it did not (the callbacks
    run in the producer's sender thread)."""

    def __init__(self) -> None:
        self.acked = 0
        self.failed = 0
        self.first_error: Exception | None = None

    def ack(self, _metadata: object) -> None:
        self.acked += 1

    def __call__(self, exc: Exception) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = exc


def publish_readings(
    config: Config,
    lines: Iterable[str],
    speedup: float,
    *,
    source: str = "input",
    total: int | None = None,
    report: Callable[[str], None] | None = None,
    progress: bool | None = None,
    keyed: bool = True,
    partition_of: Callable[[int], int] | None = None,
) -> PublishResult:
    """Send every parseable line to config.kafka.topic; report the others via `report`.

    `speedup` > 0 paces the readings that many times faster than their timestamps;
    0 sends as fast as possible. `report`: where a skipped line is told (default: stderr).
    `progress` (meterlake.core.progress) on stdout: lines read of `total`, rate and ETA,
    as a bar on a terminal, else a plain line every `[progress] every_s`; False: none
    (None: on).
    `keyed`: the sensor id is the message key (one sensor, one partition); without
    it the value goes alone, as the course's publisher sends it, and the client's
    partitioner spreads a sensor over every partition. `partition_of(n)` names the
    partition of the n-th reading sent (from 0) instead: a chosen spread.
    Returns when every reading is acknowledged; a reading the broker never
    acknowledged (after retries) is a MeterlakeError.
    """
    from kafka.errors import KafkaError

    from meterlake.core.progress import Progress

    if not (speedup >= 0 and math.isfinite(speedup)):
        raise MeterlakeError(f"--speedup must be 0 or a positive number, not {speedup}")
    kafka = config.kafka
    zone = ZoneInfo(config.semantics.zone)
    ensure_topic(kafka)
    producer = open_producer(kafka, speedup)
    deliveries = _Deliveries()
    sent = skipped = 0
    first: datetime | None = None
    began = time.monotonic()
    hidden = progress is False  # a Progress that never shows a line
    label = f"publish {kafka.topic}"
    bar = Progress({label: total}, "lines", tty=False if hidden else None,
                   every_s=math.inf if hidden else config.progress.every_s)
    if report is None:

        def report(message: str) -> None:
            bar.write(message, sys.stderr)

    try:
        header_possible = True
        for number, line in enumerate(lines, 1):
            if number % PROGRESS_EVERY == 0 or speedup:
                bar.update(label, number)
            if not line.strip():
                continue
            if header_possible:  # only the first non-blank line may be a header
                header_possible = False
                if is_header(line):
                    continue
            try:
                reading = parse_line(line, zone)
            except BadLine as exc:
                skipped += 1
                if skipped <= MAX_REPORTED:
                    report(f"{source}:{number}: skipped: {exc}")
                elif skipped == MAX_REPORTED + 1:
                    report(f"{source}: further unparseable lines are skipped without a report")
                continue
            if speedup:
                if first is None:
                    first, began = reading.at, time.monotonic()
                delay = began + replay_offset(reading.at, first, speedup) - time.monotonic()
                if delay > 0.001:
                    time.sleep(delay)
            key, value = reading_message(reading.timestamp, reading.sensor_id, reading.energy)
            partition = partition_of(sent) if partition_of else None
            future = producer.send(
                kafka.topic, key=key if keyed else None, value=value, partition=partition
            )
            future.add_callback(deliveries.ack).add_errback(deliveries)
            sent += 1
        producer.flush()
    except KafkaError as exc:
        producer.close(timeout=5)
        raise MeterlakeError(f"publishing to {kafka.topic} failed after {sent:,} readings: "
                             f"{exc}") from None
    except BaseException:
        producer.close(timeout=5)
        raise
    finally:
        bar.close()
    producer.close()
    if deliveries.failed:
        raise MeterlakeError(
            f"{deliveries.failed:,} of {sent:,} readings were not delivered to {kafka.topic}: "
            f"{deliveries.first_error}"
        )
    return PublishResult(
        sent=sent, skipped=skipped, seconds=time.monotonic() - began, acked=deliveries.acked
    )


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def publish_file(
    config: Config, path: Path, speedup: float = 60.0, keyed: bool = True
) -> PublishResult:
    """`meterlake publish`: replay a readings file, then print a one-line summary."""
    try:
        total = _count_lines(path)
        readings = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except FileNotFoundError:
        raise MeterlakeError(f"readings file not found: {path}") from None
    except IsADirectoryError:
        raise MeterlakeError(f"readings file is a directory: {path}") from None
    except OSError as exc:
        raise MeterlakeError(f"cannot read {path}: {exc.strerror or exc}") from None
    with readings:
        result = publish_readings(
            config, readings, speedup, source=str(path), total=total, keyed=keyed
        )
    print(result.summary(config.kafka.topic))
    return result
