"""Bronze: Kafka -> Delta, append only. It never parses and never drops.

Exactly once through the checkpoint: the Kafka source is replayable and each
micro-batch is appended once (meterlake.core.commits: written by delta-rs from the
driver, the commit records the checkpoint's query id and the batch id as Delta's
transaction; a batch run again after a crash is skipped).

Lost data is never silent. When Kafka no longer has offsets bronze had not
read (retention, deleted records), the default (`[streams] on_data_loss =
"fail"`) stops the query: Spark's `failOnDataLoss`. With `"record"`, bronze
goes on from the oldest offset Kafka still has and writes each gap to the
`data_loss` table: a micro-batch's planned offsets (the checkpoint's offset
log) are compared with the first offset it actually got per partition. Both
modes record their appends the same way, so switching between them keeps exactly-once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from bronze.horizon import Horizons
from meterlake.core.commits import BatchWriter
from meterlake.core.config import Config
from meterlake.core.sparkinternals import planned_offsets
from meterlake.core.streams import Run, start_stream
from meterlake.core.tables import ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

BRONZE_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField("ingested_at", TimestampType()),
        # On one row of each bronze commit: every message produced before it is in
        # bronze (this commit or an earlier one); 9999-12-31 once every partition is
        # read to its end (bronze.horizon). Null on the other rows.
        StructField("released_before", TimestampType()),
    ]
)
DATA_LOSS_SCHEMA = StructType(
    [
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("from_offset", LongType()),  # the first offset lost
        StructField("to_offset", LongType()),  # the last offset lost (inclusive)
        StructField("missing", LongType()),
        StructField("batch_id", LongType()),
        StructField("detected_at", TimestampType()),
    ]
)


def kafka_options(config: Config) -> dict[str, str]:
    """Spark Kafka source options: bootstrap, topic, and the client settings of conf."""
    options = {
        "kafka.bootstrap.servers": config.kafka.bootstrap,
        "subscribe": config.kafka.topic,
        "startingOffsets": "earliest",
        "failOnDataLoss": "true" if config.streams.on_data_loss == "fail" else "false",
    }
    options.update({f"kafka.{k}": v for k, v in config.kafka.client.items()})
    return options


def read_kafka(spark: SparkSession, config: Config) -> DataFrame:
    reader = spark.readStream.format("kafka").options(**kafka_options(config))
    return reader.option("maxOffsetsPerTrigger", config.streams.max_offsets_per_trigger).load()


def to_bronze(messages: DataFrame) -> DataFrame:
    """Kafka rows -> bronze rows: raw bytes and coordinates, plus when we got them."""
    return messages.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
        F.lit(None).cast("timestamp").alias("released_before"),
    )


def with_horizon(rows: pa.Table, horizon_us: int) -> pa.Table:
    """The batch's rows with the release horizon on its first row (bronze.horizon)."""
    if not rows.num_rows:
        return rows
    at = rows.schema.get_field_index("released_before")
    marks = pa.concat_arrays([pa.array([horizon_us], pa.int64()),
                              pa.nulls(rows.num_rows - 1, pa.int64())])
    return rows.set_column(at, rows.field(at), marks.cast(rows.field(at).type))


def per_partition(rows: pa.Table, column: str, how: str) -> dict[tuple[str, int], int]:
    """{(topic, partition): `how` ("min", "max") of the column over its rows}."""
    if not rows.num_rows:
        return {}
    values = rows.select(["topic", "partition"]).append_column(
        column, rows[column].cast(pa.int64()))
    got = values.group_by(["topic", "partition"]).aggregate([(column, how)])
    partitions = zip(got["topic"].to_pylist(), got["partition"].to_pylist(), strict=True)
    return dict(zip(partitions, got[f"{column}_{how}"].to_pylist(), strict=True))


def find_gaps(
    planned: dict[tuple[str, int], tuple[int, int]], first_read: dict[tuple[str, int], int]
) -> list[tuple[str, int, int, int]]:
    """(topic, partition, from, to) of the offsets planned but not delivered at the start
    of each partition's range (retention only ever removes a log's oldest offsets)."""
    gaps = []
    for (topic, partition), (start, end) in sorted(planned.items()):
        got = first_read.get((topic, partition), end)
        if got > start:
            gaps.append((topic, partition, start, got - 1))
    return gaps


def write_bronze_batch(config: Config):
    """foreachBatch: append the batch to bronze once (meterlake.core.commits), as one
    file, its release horizon on its first row (bronze.horizon); with on_data_loss =
    "record", first record the offsets Kafka no longer had."""
    bronze_path = str(config.table_path("bronze"))
    loss_path = str(config.table_path("data_loss"))
    checkpoint = str(config.checkpoint("bronze"))
    record_loss = config.streams.on_data_loss == "record"
    writer = BatchWriter(config.checkpoint("bronze"))
    horizons = Horizons(config.kafka)

    def write(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        app_id = writer.application(spark)
        rows = batch.toArrow()
        planned = planned_offsets(spark, checkpoint, batch_id)
        read_to = {partition: end for partition, (_, end) in planned.items()}
        last_read = per_partition(rows, "kafka_timestamp", "max")
        rows = with_horizon(rows, horizons.next(read_to, last_read))
        if record_loss:
            gaps = find_gaps(planned, per_partition(rows, "offset", "min"))
            for topic, partition, first, last in gaps:
                log.warning(
                    "data loss: Kafka no longer has offsets %d..%d of %s partition %d; "
                    "recorded in data_loss", first, last, topic, partition,
                )
            if gaps:
                found = [(t, p, a, b, b - a + 1, batch_id) for t, p, a, b in gaps]
                lost = spark.createDataFrame(found, DATA_LOSS_SCHEMA.fieldNames()[:-1]).select(
                    *(F.col(f.name).cast(f.dataType) for f in DATA_LOSS_SCHEMA.fields[:-1]),
                    F.current_timestamp().alias("detected_at"),
                )
                writer.append(loss_path, app_id, batch_id, lost.toArrow())
        writer.append(bronze_path, app_id, batch_id, rows, one_file=True)

    return write


def start_bronze(spark: SparkSession, config: Config, run: Run) -> StreamingQuery:
    path = config.table_path("bronze")
    ensure_table(spark, path, BRONZE_SCHEMA, "raw Kafka messages, one row per offset")
    ensure_table(
        spark,
        config.table_path("data_loss"),
        DATA_LOSS_SCHEMA,
        "Kafka offsets lost before bronze read them (on_data_loss = record)",
    )
    messages = read_kafka(spark, config).transform(to_bronze)
    return start_stream(messages, "bronze", config, write_bronze_batch(config), run)
