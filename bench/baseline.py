"""The baselines the pipeline is measured against, in the same run.

- `spark_batch_answers`: ONE Spark batch job computing the four answers from the
  topic: read Kafka in batch, parse the JSON, LAG per sensor over time, split
  each interval at half hours with explode(sequence(...)), join the tariff, the
  four aggregations written to Delta. A straightforward batch implementation: it
  keeps the consumption rules (max(e1 - e0, 0) spread uniformly, pieces on local
  half hours, the tariff effective on the local date, winter/summer by legal
  time) but not the stateful rules 6-11 (lateness, duplicates, jumps), which
  in-order generated data never triggers.
- `duckdb_oracle`: `oracle.compute_answers` over the same file (the floor).
- `noop_consumer`: Spark Kafka source -> format("noop"), the cost of just reading.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterlake.core.config import Config

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

HALF_HOUR_US = 1_800_000_000


def tariff_frame(spark: SparkSession, config: Config) -> DataFrame:
    """conf/tariff.toml as rows (effective_from, effective_until, season, slot, band, price)."""
    from meterlake.core.tariff import load_tariff

    tariff = load_tariff(config.semantics.tariff, config.semantics.zone)
    rows = []
    for i, period in enumerate(tariff.periods):
        until = tariff.periods[i + 1].effective_from if i + 1 < len(tariff.periods) else None
        for season in ("winter", "summer"):
            schedule = period.schedules[(season, "daily")]  # the default plan: a daily cycle
            rows += [
                (period.effective_from, until, season, slot, band.name, band.price)
                for slot, band in enumerate(schedule.slots)
            ]
    return spark.createDataFrame(
        rows,
        "effective_from DATE, effective_until DATE, season STRING, slot INT, band STRING, "
        "price DOUBLE",
    )


def read_topic(spark: SparkSession, config: Config) -> DataFrame:
    from bronze.job import kafka_options

    options = {k: v for k, v in kafka_options(config).items() if k != "failOnDataLoss"}
    return spark.read.format("kafka").options(**options).option("endingOffsets", "latest").load()


def batch_pieces(spark: SparkSession, config: Config) -> DataFrame:
    """Kafka -> readings -> intervals -> half-hour pieces with band, price and cost."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    zone = config.semantics.zone
    readings = (
        read_topic(spark, config)
        .select(
            F.from_json(
                F.col("value").cast("string"),
                "timestamp STRING, sensor_id STRING, energy DOUBLE",
            ).alias("j")
        )
        .select(
            "j.sensor_id",
            # naive timestamps are local: the session time zone is the tariff's zone
            F.unix_micros(F.to_timestamp("j.timestamp")).alias("t"),
            F.col("j.energy").alias("e"),
        )
        .filter("sensor_id IS NOT NULL AND t IS NOT NULL AND e IS NOT NULL AND e >= 0")
    )
    by_time = Window.partitionBy("sensor_id").orderBy("t")
    intervals = (
        readings.select(
            "sensor_id",
            F.lag("t").over(by_time).alias("t0"),
            F.lag("e").over(by_time).alias("e0"),
            F.col("t").alias("t1"),
            F.col("e").alias("e1"),
        )
        .filter("t0 IS NOT NULL AND t1 > t0")
        .withColumn("delta", F.greatest(F.col("e1") - F.col("e0"), F.lit(0.0)))
    )
    hh = F.lit(HALF_HOUR_US)
    pieces = (
        intervals.withColumn(
            "p",
            F.explode(
                F.sequence(F.floor(F.col("t0") / hh), F.floor((F.col("t1") - 1) / hh))
            ),
        )
        .withColumn("ps_us", F.col("p") * hh)
        .withColumn(
            "kwh",
            F.col("delta")
            * (F.least(F.col("t1"), F.col("ps_us") + hh) - F.greatest(F.col("t0"), F.col("ps_us")))
            / (F.col("t1") - F.col("t0")),
        )
        .withColumn("period_start", F.timestamp_micros("ps_us"))
        .withColumn("day", F.to_date("period_start"))
        .withColumn("slot", F.hour("period_start") * 2 + F.floor(F.minute("period_start") / 30))
    )
    # Legal summer time: the zone's offset at the period is above its standard offset
    # (the smaller of the offsets on 1 January and 1 July of that year).
    offset = lambda ts: F.unix_seconds(F.from_utc_timestamp(ts, zone)) - F.unix_seconds(ts)  # noqa: E731
    year = F.year("period_start")
    jan = F.make_timestamp(year, F.lit(1), F.lit(1), F.lit(12), F.lit(0), F.lit(0))
    jul = F.make_timestamp(year, F.lit(7), F.lit(1), F.lit(12), F.lit(0), F.lit(0))
    pieces = pieces.withColumn(
        "season",
        F.when(offset(F.col("period_start")) > F.least(offset(jan), offset(jul)), "summer")
        .otherwise("winter"),
    )
    tariff = F.broadcast(tariff_frame(spark, config)).alias("tf")
    joined = pieces.alias("pc").join(
        tariff,
        (F.col("pc.season") == F.col("tf.season"))
        & (F.col("pc.slot") == F.col("tf.slot"))
        & (F.col("pc.day") >= F.col("tf.effective_from"))
        & (F.col("tf.effective_until").isNull() | (F.col("pc.day") < F.col("tf.effective_until"))),
    )
    return joined.select(
        "pc.sensor_id", "pc.period_start", "pc.day",
        F.trunc("pc.day", "month").alias("month"),
        "tf.band", "tf.price", "pc.kwh",
        (F.col("pc.kwh") * F.col("tf.price")).alias("cost_eur"),
        F.timestamp_micros("pc.t1").alias("as_of"),
    )


def batch_gold(pieces: DataFrame) -> dict[str, DataFrame]:
    from pyspark.sql import functions as F

    def answer(keys: list[str], value: str, column: str) -> DataFrame:
        return (
            pieces.groupBy(*keys)
            .agg(F.sum(column).alias(value), F.max("as_of").alias("as_of"))
            .withColumn("updated_at", F.current_timestamp())
        )

    return {
        "month_energy": answer(["sensor_id", "month"], "energy_kwh", "kwh"),
        "day_energy": answer(["sensor_id", "day"], "energy_kwh", "kwh"),
        "halfhour_energy": answer(["sensor_id", "day", "period_start"], "energy_kwh", "kwh"),
        "day_cost": answer(["sensor_id", "day"], "cost_eur", "cost_eur"),
    }


def spark_batch_answers(spark: SparkSession, config: Config, out: Path) -> dict[str, Any]:
    """Run the batch job into out/<table>; seconds and the month totals per sensor."""
    from pyspark import StorageLevel

    if out.exists():
        shutil.rmtree(out)
    started = time.monotonic()
    pieces = batch_pieces(spark, config).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        for table, frame in batch_gold(pieces).items():
            frame.write.format("delta").mode("overwrite").save(str(out / table))
    finally:
        pieces.unpersist()
    seconds = time.monotonic() - started
    totals = {
        r["sensor_id"]: r["energy_kwh"]
        for r in spark.read.format("delta").load(str(out / "month_energy"))
        .groupBy("sensor_id").sum("energy_kwh").withColumnRenamed("sum(energy_kwh)", "energy_kwh")
        .collect()
    }
    return {"seconds": seconds, "totals": totals}


def duckdb_oracle(path: Path, config: Config) -> dict[str, Any] | None:
    """The oracle (`oracle/`) over the file: seconds and month totals; None if it is not there."""
    try:
        from oracle import compute_answers
    except ImportError:
        return None
    started = time.monotonic()
    result = compute_answers(path, config.semantics)
    seconds = time.monotonic() - started
    totals = result.month_energy.groupby("sensor_id")["energy_kwh"].sum().to_dict()
    return {"seconds": seconds, "totals": {str(k): float(v) for k, v in totals.items()}}


def noop_consumer(spark: SparkSession, config: Config, checkpoint: Path) -> dict[str, Any]:
    """Kafka -> noop sink, availableNow, same source options as bronze: rows and seconds."""
    from bronze.job import read_kafka

    if checkpoint.exists():
        shutil.rmtree(checkpoint)
    started = time.monotonic()
    query = (
        read_kafka(spark, config)
        .writeStream.format("noop")
        .queryName("bench_noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    seconds = time.monotonic() - started
    rows = sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds if seconds else 0.0}
