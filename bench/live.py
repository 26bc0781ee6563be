"""Live mode: every layer's stream on short triggers, publishing paced or a backlog.

Used for freshness (send time -> effect visible in gold through DuckDB), per-batch
overhead (progress durationMs of small batches against an empty one timed in the
same run) and sustainable throughput (a backlog drained with bounded batches).
"""

from __future__ import annotations

import logging
import shutil
import statistics
import threading
import time
from bisect import bisect_left
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from meterlake.app.pipeline import start_layer
from meterlake.core.catalog import LAYERS
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.streams import Run

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def short_triggers(
    config: Config, trigger: str, max_offsets: int | None = None, silver_source: str = "kafka"
) -> Config:
    """Every layer on `trigger`; silver on the topic by default (the fresh path, docs:
    [streams] silver_source), or on bronze for a lake whose silver already read bronze."""
    streams = replace(
        config.streams, bronze=trigger, silver=trigger, gold=trigger, silver_source=silver_source,
    )
    if max_offsets:
        streams = replace(streams, max_offsets_per_trigger=max_offsets)
    return replace(config, streams=streams)


def start_pipeline(spark: SparkSession, config: Config) -> list[StreamingQuery]:
    return [q for layer in LAYERS for q in start_layer(spark, config, layer, Run.LIVE)]


def stop_all(queries: list[StreamingQuery], settle_s: float = 10) -> None:
    """Stop each query between two triggers when it gets there within settle_s: a stop
    in the middle of a batch works too, but fills the log with aborted-task traces."""
    for query in queries:
        try:
            deadline = time.monotonic() + settle_s
            while (query.isActive and query.status["isTriggerActive"]
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            query.stop()
        except Exception as exc:  # a query that failed is reported by the caller
            log.warning("stopping %s: %s", query.name, exc)


def check_alive(queries: list[StreamingQuery]) -> None:
    for query in queries:
        if not query.isActive and query.exception() is not None:
            raise MeterlakeError(f"query {query.name} failed: {str(query.exception())[:300]}")


# ---- gold as seen through DuckDB --------------------------------------------------------


def gold_as_of(config: Config) -> dict[str, int]:
    """Per sensor, the latest as_of (µs since the epoch) in gold day_energy, via
    meterlake.read.connection."""
    sensors, as_of = gold_as_of_columns(config)
    return dict(zip(sensors.to_pylist(), as_of.tolist(), strict=True))


def gold_as_of_columns(config: Config) -> tuple[pa.ChunkedArray, np.ndarray]:
    """gold_as_of as two columns in the order of the sensor ids, as DuckDB gives them."""
    from meterlake.read.connection import connect

    con = connect(config, tables=("day_energy",))
    try:
        rows = con.execute(
            "SELECT sensor_id, epoch_us(max(as_of)) AS as_of FROM day_energy"
            " WHERE as_of IS NOT NULL GROUP BY sensor_id ORDER BY sensor_id"
        ).fetch_arrow_table()
    finally:
        con.close()
    return rows["sensor_id"], rows["as_of"].to_numpy()


class Poller(threading.Thread):
    """Polls gold day_energy through DuckDB every `interval` seconds until stopped.
    Each poll keeps (began, ended, the sensors whose as_of moved since the poll before:
    all of them in the first), and `seen` every sensor's latest: a poll of 100,000
    meters costs the query, not a Python dict of every meter (which took the poller
    about a third of a core of the 2 the fleet's live pipeline runs on)."""

    def __init__(self, config: Config, interval: float) -> None:
        super().__init__(daemon=True, name="gold-poller")
        self.config = config
        self.interval = interval
        self.polls: list[tuple[float, float, dict[str, int]]] = []
        self.seen: dict[str, int] = {}
        self.errors = 0
        self._halt = threading.Event()
        self._last: tuple[pa.ChunkedArray, np.ndarray] | None = None

    def run(self) -> None:
        while not self._halt.is_set():
            began = time.time()
            try:
                sensors, as_of = gold_as_of_columns(self.config)
                ended = time.time()
            except Exception:  # the table may not exist yet, or a commit races the read
                self.errors += 1
            else:
                self.polls.append((began, ended, self._moved(sensors, as_of)))
            self._halt.wait(max(0.0, self.interval - (time.time() - began)))

    def _moved(self, sensors: pa.ChunkedArray, as_of: np.ndarray) -> dict[str, int]:
        last, self._last = self._last, (sensors, as_of)
        if last is not None and sensors.equals(last[0]):
            at = np.flatnonzero(as_of != last[1])
            sensors, as_of = sensors.take(pa.array(at)), as_of[at]
        moved = dict(zip(sensors.to_pylist(), as_of.tolist(), strict=True))
        self.seen.update(moved)
        return moved

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=30)


# ---- paced publishing -------------------------------------------------------------------


def paced_publish(
    config: Config, path: Path, speedup: float, duration_s: float
) -> list[tuple[str, int, float]]:
    """Replay path `speedup` times faster than real time for duration_s seconds, with the
    publisher's paced settings; returns (sensor, event µs, wall time of send) per reading."""
    from meterlake.tools.publish import (
        ensure_topic,
        open_producer,
        parse_line,
        reading_message,
        replay_offset,
    )
    from silver.message import parse_timestamp

    zone = ZoneInfo(config.semantics.zone)
    ensure_topic(config.kafka)
    producer = open_producer(config.kafka, speedup)
    topic = config.kafka.topic
    sent: list[tuple[str, int, float]] = []
    first = None
    began = time.monotonic()
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                reading = parse_line(line, zone)
                if first is None:
                    first, began = reading.at, time.monotonic()
                due = replay_offset(reading.at, first, speedup)
                if due > duration_s:
                    break
                delay = began + due - time.monotonic()
                if delay > 0.001:
                    time.sleep(delay)
                key, value = reading_message(reading.timestamp, reading.sensor_id, reading.energy)
                producer.send(topic, key=key, value=value)
                sent.append(
                    (reading.sensor_id, parse_timestamp(reading.timestamp, config.semantics.zone),
                     time.time())
                )
        producer.flush()
    finally:
        producer.close()
    return sent


def send_ticks(config: Config, topic: str, seconds: float) -> None:
    """One message a second to topic for `seconds` (the empty-batch floor's input)."""
    from meterlake.tools.publish import open_producer

    producer = open_producer(config.kafka, 1)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            producer.send(topic, key=b"tick", value=b"tick")
            producer.flush()
            time.sleep(1.0)
    finally:
        producer.close()


# ---- the empty-batch floor --------------------------------------------------------------


def empty_batch_floor(
    spark: SparkSession, config: Config, trigger: str, seconds: float
) -> list[StreamingQuery]:
    """Two trivial streams on a topic receiving one message a second, for `seconds`:
    Kafka -> noop and Kafka -> Delta append. Their micro-batches (1 row each) are the
    'empty batch'. Run alone, after the pipeline stopped: the floor must not load the
    pipeline it is compared with. Returns the stopped queries (for their progress)."""
    from bronze.job import kafka_options
    from meterlake.tools.publish import ensure_topic

    topic = config.kafka.topic + "-tick"
    ensure_topic(replace(config.kafka, topic=topic, partitions=1))
    options = {**kafka_options(config), "subscribe": topic, "startingOffsets": "latest"}
    root = config.lake / "_bench"
    queries = []
    for name, fmt in (("floor_noop", "noop"), ("floor_delta", "delta")):
        checkpoint = root / "_checkpoints" / name
        shutil.rmtree(checkpoint, ignore_errors=True)
        writer = (
            spark.readStream.format("kafka").options(**options).load()
            .select("key", "value", "offset")
            .writeStream.format(fmt).queryName(name)
            .option("checkpointLocation", str(checkpoint))
            .trigger(processingTime=trigger)
        )
        queries.append(writer.start(str(root / name)) if fmt == "delta" else writer.start())
    try:
        send_ticks(config, topic, seconds)
    finally:
        stop_all(queries)
    check_alive(queries)
    return queries


# ---- reading progress -------------------------------------------------------------------

PHASES = ("triggerExecution", "latestOffset", "getBatch", "queryPlanning", "addBatch",
          "walCommit", "commitOffsets")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def batch_stats(query: StreamingQuery, skip: int = 1) -> dict[str, Any]:
    """Medians over the query's micro-batches with input (the first `skip` dropped as
    warm-up) and over its no-data triggers, from recentProgress durationMs."""
    progress = list(query.recentProgress)
    with_rows = [p for p in progress if int(p.get("numInputRows", 0)) > 0][skip:]
    empty = [p for p in progress if int(p.get("numInputRows", 0)) == 0]
    phases = {
        phase: _median([float(p["durationMs"][phase]) for p in with_rows
                        if phase in p.get("durationMs", {})])
        for phase in PHASES
    }
    return {
        "batches": len(with_rows),
        "median_ms": phases["triggerExecution"],
        "p90_ms": (round(sorted(float(p["durationMs"]["triggerExecution"]) for p in with_rows)
                         [int(0.9 * (len(with_rows) - 1))], 1) if with_rows else None),
        "median_rows": _median([float(p["numInputRows"]) for p in with_rows]),
        "phases_ms": phases,
        "no_data_triggers": len(empty),
        "no_data_median_ms": _median(
            [float(p["durationMs"].get("triggerExecution", 0)) for p in empty]
        ),
    }


def kafka_lag(query: StreamingQuery) -> list[tuple[float, int]]:
    """(batch id, max offsets behind latest over partitions) from the Kafka source metrics."""
    out = []
    for p in query.recentProgress:
        for source in p.get("sources", []):
            metrics = source.get("metrics") or {}
            if "maxOffsetsBehindLatest" in metrics:
                out.append((p["batchId"], int(float(metrics["maxOffsetsBehindLatest"]))))
    return out


# ---- freshness + overhead ---------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    if ordered[hi] == float("inf"):
        return ordered[hi] if k > lo else ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latencies(
    sent: list[tuple[str, int, float]], polls: list[tuple[float, float, dict[str, int]]],
    warmup_s: float,
) -> tuple[list[float], int]:
    """Seconds from each reading's send to the end of the first poll whose gold as_of for
    its sensor reached the reading's time; readings sent during warm-up are dropped.
    Returns the latencies and the number of readings never seen (e.g. a sensor's first)."""
    per_sensor: dict[str, tuple[list[int], list[float]]] = {}
    for _began, ended, seen in polls:
        for sensor, as_of in seen.items():
            stamps, times = per_sensor.setdefault(sensor, ([], []))
            stamps.append(max(as_of, stamps[-1]) if stamps else as_of)
            times.append(ended)
    if not sent:
        return [], 0
    start = sent[0][2] + warmup_s
    out, unseen = [], 0
    for sensor, ts_us, at in sent:
        if at < start:
            continue
        stamps, times = per_sensor.get(sensor, ([], []))
        i = bisect_left(stamps, ts_us)
        if i == len(stamps):
            unseen += 1
            continue
        # the first poll after the send that saw it (polls before the send saw older data)
        j = bisect_left(times, at, lo=i)
        out.append(max(times[j] if j < len(times) else times[i], at) - at)
    return out, unseen


def freshness_run(
    spark: SparkSession, config: Config, path: Path, speedup: float, duration_s: float,
    warmup_s: float, trigger: str = "1 second", poll_s: float = 0.25, floor_s: float = 60,
    silver_source: str = "kafka",
) -> dict[str, Any]:
    """Live pipeline on short triggers, readings published paced; latency to gold and
    per-batch times of every query; then, in the same run, the empty-batch floor (none
    when floor_s is 0)."""
    from meterlake.tools.publish import ensure_topic

    config = short_triggers(config, trigger, silver_source=silver_source)
    ensure_topic(config.kafka)
    queries = start_pipeline(spark, config)
    poller = Poller(config, poll_s)
    poller.start()
    began = time.monotonic()
    try:
        sent = paced_publish(config, path, speedup, duration_s)
        published_s = time.monotonic() - began
        # let the last readings reach gold (each sensor's last as_of = its last reading)
        last = {}
        for sensor, ts, _ in sent:
            last[sensor] = ts
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check_alive(queries)
            seen = poller.seen
            if all(seen.get(s, 0) >= t for s, t in last.items()):
                break
            time.sleep(0.5)
    finally:
        poller.halt()
        stop_all(queries)
    check_alive(queries)
    floors = empty_batch_floor(spark, config, trigger, floor_s) if floor_s else []
    values, unseen = latencies(sent, poller.polls, warmup_s)
    half = len(values) // 2  # values are in send order: a growing latency is a backlog
    # Readings never visible by the end count as "longer than anything measured":
    # a percentile that falls among them is None (censored), never an underestimate.
    censored = sorted(values) + [float("inf")] * unseen
    pct = lambda q: _finite(percentile(censored, q))  # noqa: E731
    poll_times = [e - b for b, e, _ in poller.polls]
    stats = {q.name: batch_stats(q) for q in queries + floors}
    return {
        "readings_sent": len(sent),
        "published_s": round(published_s, 1),
        "speedup": speedup,
        "trigger": trigger,
        "warmup_dropped_s": warmup_s,
        "latencies_measured": len(values),
        "readings_never_seen": unseen,
        "p50_s": _r(pct(0.5)),
        "p95_s": _r(pct(0.95)),
        "p99_s": _r(pct(0.99)),
        "censored_note": (f"{unseen} readings (after warm-up) not visible in gold within 60 s "
                          "of the end of publishing: they count as longer than the maximum")
                         if unseen else None,
        "max_s": _r(max(values) if values else None),
        "p50_first_half_s": _r(percentile(values[:half], 0.5)),
        "p50_second_half_s": _r(percentile(values[half:], 0.5)),
        "polls": len(poller.polls),
        "poll_errors": poller.errors,
        "poll_median_s": _r(statistics.median(poll_times) if poll_times else None),
        "batches": stats,
        "latency_histogram": _histogram(values),
    }


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _histogram(values: list[float], width: float = 0.5) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        bucket = f"{int(v // width) * width:.1f}"
        counts[bucket] = counts.get(bucket, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: float(kv[0])))


# ---- sustainable throughput -------------------------------------------------------------


def _gold_idle(queries: list[StreamingQuery]) -> bool:
    """The gold query is between batches: the batch that brought day_energy (the table
    polled) to the last readings has written the other three tables too."""
    return not next(q for q in queries if q.name == "gold").status["isTriggerActive"]


def drain_run(
    spark: SparkSession, config: Config, last: dict[str, int], readings: int,
    trigger: str, max_offsets: int, timeout_s: float,
) -> dict[str, Any]:
    """A backlog of `readings` in the topic, the live pipeline on `trigger` with at most
    `max_offsets` per bronze batch: seconds until gold (through DuckDB) holds every
    sensor's last reading; Kafka lag per bronze batch."""
    config = short_triggers(config, trigger, max_offsets)
    began = time.monotonic()
    queries = start_pipeline(spark, config)
    done_at = None
    samples = []
    try:
        while time.monotonic() - began < timeout_s:
            time.sleep(1.0)
            check_alive(queries)
            try:
                seen = gold_as_of(config)
            except Exception:
                continue
            covered = sum(1 for s, t in last.items() if seen.get(s, 0) >= t)
            samples.append((round(time.monotonic() - began, 1), covered))
            if covered == len(last) and _gold_idle(queries):
                done_at = time.monotonic() - began
                break
    finally:
        stop_all(queries)
    check_alive(queries)
    by_name = {q.name: q for q in queries}
    rows = {
        name: sum(int(p.get("numInputRows", 0)) for p in q.recentProgress)
        for name, q in by_name.items()
    }
    lag = kafka_lag(by_name["bronze"])
    seconds = done_at if done_at is not None else time.monotonic() - began
    return {
        "readings": readings,
        "sensors": len(last),
        "trigger": trigger,
        "max_offsets_per_trigger": max_offsets,
        "completed": done_at is not None,
        "seconds": round(seconds, 2),
        "rate": round(readings / seconds, 1) if done_at else None,
        "rows_read": rows,
        "bronze_batches": len([p for p in by_name["bronze"].recentProgress
                               if int(p.get("numInputRows", 0)) > 0]),
        "silver_batches": batch_stats(by_name["silver"], skip=0),
        "kafka_lag_max_per_partition": max((x for _, x in lag), default=None),
        "kafka_lag_by_batch": lag[:60],
        "coverage_samples": samples[-30:],
    }
