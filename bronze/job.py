"""Bronze: Kafka -> Delta, append only. It never parses and never drops.

Exactly once through the checkpoint: the Kafka source is replayable and the
Delta sink commits each micro-batch once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

from meterlake.config import Config
from meterlake.tables import ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

BRONZE_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField("ingested_at", TimestampType()),
    ]
)


def kafka_options(config: Config) -> dict[str, str]:
    """Spark Kafka source options: bootstrap, topic, and the client settings of conf."""
    options = {
        "kafka.bootstrap.servers": config.kafka.bootstrap,
        "subscribe": config.kafka.topic,
        "startingOffsets": "earliest",
        "failOnDataLoss": "true",
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
    )


def start_bronze(spark: SparkSession, config: Config, once: bool) -> StreamingQuery:
    path = config.table_path("bronze")
    ensure_table(spark, path, BRONZE_SCHEMA, "raw Kafka messages, one row per offset")
    writer = (
        read_kafka(spark, config)
        .transform(to_bronze)
        .writeStream.format("delta")
        .queryName("bronze")
        .option("checkpointLocation", str(config.checkpoint("bronze")))
        .outputMode("append")
    )
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=config.streams.trigger("bronze"))
    )
    return writer.start(str(path))
