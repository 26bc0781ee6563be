"""Silver: Kafka messages -> readings, pieces (`silver`) and quarantine.

Silver reads the bronze table by default, or the topic itself beside bronze (one
hop less between a reading and the answers; `[streams] silver_source`).

Per-sensor state (the recent accepted readings, bounded by the allowed
lateness) lives in Spark's state store (RocksDB), one row per hash bucket of
sensor ids holding the windows of all its meters (silver.bucket). Each
micro-batch comes to the driver as Arrow in one Spark job and is appended to the
tables that get rows, once each (meterlake.core.commits: delta-rs commits recording
this checkpoint's query id and the batch id as Delta's transaction), so a replayed
batch after a crash changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout
from pyspark.sql.types import (
    BinaryType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from bronze.job import read_kafka, to_bronze
from meterlake.core import failpoints
from meterlake.core.checkpoints import pin_layout
from meterlake.core.commits import BatchWriter
from meterlake.core.config import Config
from meterlake.core.streams import Run, start_stream
from meterlake.core.tables import ensure_table, read_appends
from meterlake.core.tariff import load_tariff
from silver.bucket import STATE_DDL, STATE_LAYOUT, judge_buckets
from silver.judge import NO_SENSOR, SilverRules
from silver.message import CANONICAL, parse_timestamp
from silver.stored import OUTPUT_DDL, decode

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

_COORDINATES = [
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("kafka_timestamp", TimestampType()),
]
READINGS_SCHEMA = StructType(
    [
        StructField("sensor_id", StringType()),
        StructField("event_time", TimestampType()),
        StructField("day", DateType()),
        StructField("energy", DoubleType()),
        *_COORDINATES,
    ]
)
PIECES_SCHEMA = StructType(
    [
        StructField("sensor_id", StringType()),
        StructField("period_start", TimestampType()),
        StructField("day", DateType()),
        StructField("month", DateType()),
        StructField("band", StringType()),
        StructField("price", DoubleType()),
        StructField("kwh", DoubleType()),
        StructField("cost_eur", DoubleType()),
        StructField("interval_start", TimestampType()),
        StructField("interval_end", TimestampType()),
        StructField("sign", IntegerType()),
        *_COORDINATES,
    ]
)
QUARANTINE_SCHEMA = StructType(
    [
        StructField("reason", StringType()),
        StructField("detail", StringType()),
        StructField("sensor_id", StringType()),
        StructField("event_time", TimestampType()),
        StructField("energy", DoubleType()),
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        *_COORDINATES,
    ]
)
TABLES = {
    "readings": (READINGS_SCHEMA, "accepted readings"),
    "silver": (PIECES_SCHEMA, "consumption pieces, one half-hour period each, with the tariff"),
    "quarantine": (QUARANTINE_SCHEMA, "rejected messages and anomalies, with a reason code"),
}


def silver_rules(config: Config) -> SilverRules:
    s = config.semantics
    return SilverRules(
        zone=s.zone,
        min_ts_us=parse_timestamp(s.min_timestamp.isoformat(), s.zone),
        max_clock_skew_us=int(s.max_clock_skew_s * 1e6),
        allowed_lateness_us=int(s.allowed_lateness_s * 1e6),
        max_power_kw=s.max_power_kw,
        tariff=load_tariff(s.tariff, s.zone),
    )


# CANONICAL's groups, each after a separator none of them can hold: one match per
# message (a regexp_extract per group matched five times: the month's 456,762
# messages 1.66 s against 0.68 s).
_SEPARATOR = "\x01"
_GROUPS = "".join(f"{_SEPARATOR}${i}" for i in range(1, 6))


def with_fields(bronze: DataFrame) -> DataFrame:
    """The grouping key (the JSON's sensor_id, or '' when there is none to read) and,
    for a message in the publishers' own form (silver.message.CANONICAL), its fields
    read in the JVM: `fast_ts_us` (a naive time read in the session's zone, the
    meters', a repeated one as its first occurrence; one with an offset, at that
    offset), `fast_energy`, `fast_naive` (no offset); null for any other message,
    which Python parses."""
    text = F.col("value").cast("string")
    groups = F.regexp_replace(text, CANONICAL, _GROUPS)
    # The pattern is anchored: a message in the form becomes its groups, which start
    # with the separator where the message starts with '{'; any other stays as it is.
    canonical = groups != text
    parts = F.split(groups, _SEPARATOR)
    day, clock, offset, sensor, energy = (F.get(parts, F.lit(i)) for i in (1, 2, 3, 4, 5))
    # Spark's own reading of an ISO 8601 time (a naive one in the session's zone), not a
    # pattern's: the month's timestamps 0.45 s -> 0.06 s.
    moment = F.concat(day, F.lit(" "), clock, offset).try_cast("timestamp")
    key = F.when(canonical, sensor).otherwise(F.get_json_object(text, "$.sensor_id"))
    return bronze.select(
        F.coalesce(key, F.lit(NO_SENSOR)).alias("sensor_key"),
        "*",
        F.when(canonical, F.unix_micros(moment)).alias("fast_ts_us"),
        F.when(canonical & moment.isNotNull(), energy.cast("double")).alias("fast_energy"),
        F.when(canonical, offset == "").alias("fast_naive"),
    )


def judged(rules: SilverRules, buckets: int, hold: bool):
    """bronze rows -> the stateful step's output rows (silver.bucket): grouped by a
    hash bucket of the sensor id, so that one call of the step and one state row serve
    all the bucket's meters, and the state stays partitioned by meter (a meter is in
    one bucket, a bucket in one state partition) for Spark to spread over a cluster.

    `hold` (silver reads bronze): the row of each bronze commit that carries its
    release horizon (bronze.horizon) also goes to every bucket as a `tick`, so that
    each bucket learns the horizon and judges the messages it held for it, even in a
    batch without messages of its own."""

    def transform(bronze: DataFrame) -> DataFrame:
        fields = bronze.transform(with_fields)
        horizon = F.unix_micros("released_before")
        every = F.sequence(F.lit(-1), F.lit(buckets - 1))  # -1: the message itself
        tick = F.explode(F.when(horizon.isNotNull() & F.lit(hold), every)
                         .otherwise(F.array(F.lit(-1))))
        return (
            fields.select("*", horizon.alias("released_before_us"), tick.alias("tick"))
            .select(
                F.when(F.col("tick") < 0, F.pmod(F.xxhash64("sensor_key"), F.lit(buckets)))
                .otherwise(F.col("tick")).alias("bucket"),
                (F.col("tick") >= 0).alias("is_tick"),
                "released_before_us", "sensor_key", "key", "value", "topic", "partition",
                "offset", F.unix_micros("kafka_timestamp").alias("kafka_ts_us"),
                "fast_ts_us", "fast_energy", "fast_naive",
            )
            .groupBy("bucket")
            .applyInPandasWithState(
                judge_buckets(rules, hold), OUTPUT_DDL, STATE_DDL, "append",
                GroupStateTimeout.NoTimeout,
            )
        )

    return transform


# Each table: the kind of output row it takes and its columns, from silver.stored.STORED.
SPLITS: dict[str, tuple[str, dict[str, str]]] = {
    table: (kind, {f.name: sources.get(f.name, f.name) for f in schema.fields})
    for table, kind, schema, sources in (
        ("readings", "reading", READINGS_SCHEMA, {"day": "event_day"}),
        ("silver", "piece", PIECES_SCHEMA, {"day": "period_day"}),
        ("quarantine", "flag", QUARANTINE_SCHEMA, {}),
    )
}


def split(rows: pa.Table) -> dict[str, pa.Table]:
    """Stored rows (silver.stored.STORED) -> each table's rows, for the tables that get any."""
    tables = {}
    for table, (kind, columns) in SPLITS.items():
        mine = rows.filter(pc.equal(rows["kind"], kind))
        if mine.num_rows:
            tables[table] = mine.select(list(columns.values())).rename_columns(list(columns))
    return tables


def write_silver_batch(config: Config):
    """foreachBatch: one micro-batch of the step's values -> an append to each table
    that gets rows, each once (meterlake.core.commits). The batch comes to the driver
    in one Spark job, as Arrow (silver.stored: the rows with their stored columns,
    computed by the step); a table without rows in the batch gets no commit (most
    batches quarantine nothing)."""
    writer = BatchWriter(config.checkpoint("silver"), prefix="silver-")

    def write(batch: DataFrame, batch_id: int) -> None:
        app_id = writer.application(batch.sparkSession)
        rows = decode(batch.toArrow()["rows"].to_pylist())
        for written, (table, table_rows) in enumerate(split(rows).items()):
            if written:
                failpoints.pause("between_silver_writes")
            path = str(config.table_path(table))
            writer.append(path, app_id, batch_id, table_rows)

    return write


def read_messages(spark: SparkSession, config: Config) -> DataFrame:
    """The messages silver judges, as bronze rows: read from the topic itself
    (`[streams] silver_source = "kafka"`) or from the bronze table ("bronze")."""
    if config.streams.silver_source == "kafka":
        return read_kafka(spark, config).transform(to_bronze)
    return read_appends(spark, config.table_path("bronze"),
                        {"maxBytesPerTrigger": config.streams.bronze_bytes_per_trigger})


def start_silver(spark: SparkSession, config: Config, run: Run) -> StreamingQuery:
    for table, (schema, comment) in TABLES.items():
        ensure_table(spark, config.table_path(table), schema, comment)
    buckets = config.streams.meter_buckets
    pin_layout(config.checkpoint("silver"), "silver",
               {"meter_buckets": buckets, "state": STATE_LAYOUT}, config.storage)
    hold = config.streams.silver_source == "bronze"
    step = judged(silver_rules(config), buckets, hold)
    rows = read_messages(spark, config).transform(step)
    return start_stream(rows, "silver", config, write_silver_batch(config), run)
