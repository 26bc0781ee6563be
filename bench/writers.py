"""Gold writers side by side: the cost of one live batch's write to the four gold
tables, three ways, on the same increments (the lever of issue 16: gold without
Spark MERGE).

- `spark_merge`: what gold did before: a Spark Delta MERGE per table (unpartitioned
  tables, as they were), txnAppId/txnVersion set per table for exactly-once;
- `delta_rs_merge`: the same MERGE by delta-rs in the driver;
- `partition_overwrite` (what gold.job does): read the touched partitions, add in
  Arrow, overwrite those partitions (delta-rs, predicate on the partition column).

A batch is one half-hour period of `meters` meters on one day (a few rows per table,
as in the live run); the tables start empty and grow to a day of periods.
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from gold.answers import ANSWERS, UTC_MICROS, priced_by_plans
from gold.job import add_increments
from meterlake.core.commits import BatchWriter
from meterlake.core.tariff import Tariff

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def period_batches(meters: int, batches: int) -> list[pa.Table]:
    """Period sums as gold.answers.period_sums gives them: batch i = period i of Feb 3."""
    start = datetime(2024, 2, 3, tzinfo=UTC)
    out = []
    for i in range(batches):
        at = start + timedelta(minutes=30 * i)
        out.append(pa.table({
            "sensor_id": [f"S{m:02d}" for m in range(meters)],
            "month": [date(2024, 2, 1)] * meters,
            "day": [date(2024, 2, 3)] * meters,
            "period_start": pa.array([at] * meters, UTC_MICROS),
            "kwh": [0.1 + m / 100 for m in range(meters)],
            "cost_eur": [0.01 + m / 1000 for m in range(meters)],
            "as_of": pa.array([at + timedelta(minutes=29)] * meters, UTC_MICROS),
        }))
    return out


def _spark_merge(spark: SparkSession, path: str, answer, increments: pa.Table, batch: int) -> None:
    from delta.tables import DeltaTable as SparkDeltaTable

    source = spark.createDataFrame(increments.to_pandas())
    spark.conf.set("spark.databricks.delta.write.txnAppId", f"{answer.table}-bench")
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(batch))
    try:
        value = answer.value
        (
            SparkDeltaTable.forPath(spark, path).alias("t")
            .merge(source.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in answer.keys))
            .whenMatchedUpdate(set={value: f"t.{value} + s.{value}",
                                    "as_of": "greatest(t.as_of, s.as_of)",
                                    "updated_at": "current_timestamp()"})
            .whenNotMatchedInsert(values={**{c: f"s.{c}" for c in (*answer.keys, value,
                                                                   "as_of")},
                                          "updated_at": "current_timestamp()"})
            .execute()
        )
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")


def _rs_merge(table: DeltaTable, answer, increments: pa.Table, batch: int) -> None:
    now = pa.array([datetime.now(UTC)] * increments.num_rows, UTC_MICROS)
    value = answer.value
    (
        table.merge(increments.append_column("updated_at", now),
                    " AND ".join(f"t.{k} = s.{k}" for k in answer.keys),
                    source_alias="s", target_alias="t",
                    commit_properties=CommitProperties(
                        app_transactions=[Transaction(f"{answer.table}-bench", batch)]))
        .when_matched_update({value: f"t.{value} + s.{value}",
                              "as_of": "CASE WHEN s.as_of > t.as_of THEN s.as_of "
                                       "ELSE t.as_of END",
                              "updated_at": "s.updated_at"})
        .when_not_matched_insert_all()
        .execute()
    )


def compare_writers(spark: SparkSession, root: Path, tariff: Tariff, meters: int = 11,
                    batches: int = 24) -> dict[str, Any]:
    """Median and p90 ms per batch (every gold table; the plans' from the sums priced
    under every plan of `tariff`, as gold.job does) for each writer."""
    sums = period_batches(meters, batches)
    results: dict[str, Any] = {"meters": meters, "batches": batches}
    for way in ("spark_merge", "delta_rs_merge", "partition_overwrite"):
        lake = root / way
        shutil.rmtree(lake, ignore_errors=True)
        tables: dict[str, Any] = {}
        for name, answer in ANSWERS.items():
            path = str(lake / name)
            partition = [] if way == "spark_merge" else [answer.partition]
            empty = answer.arrow_schema.empty_table()
            write_deltalake(path, empty, partition_by=partition or None)
            tables[name] = DeltaTable(path) if way == "delta_rs_merge" else path
        writer = BatchWriter(lake / "_checkpoint")  # app ids are given: never read
        times = []
        for batch, rows in enumerate(sums):
            began = time.perf_counter()
            priced = priced_by_plans(rows, tariff)
            for name, answer in ANSWERS.items():
                increments = answer.increments(priced if answer.by_plan else rows)
                if way == "spark_merge":
                    _spark_merge(spark, tables[name], answer, increments, batch)
                elif way == "delta_rs_merge":
                    _rs_merge(tables[name], answer, increments, batch)
                else:
                    add_increments(writer, tables[name], answer, [increments],
                                   f"{name}-bench", batch)
            times.append((time.perf_counter() - began) * 1000)
        times = times[2:]  # the first batches warm up (JIT, codegen, table creation)
        results[way] = {
            "median_ms": round(statistics.median(times), 1),
            "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 1),
        }
        shutil.rmtree(lake, ignore_errors=True)
    return results


def compare_compaction(spark: SparkSession, root: Path, appends: int = 120,
                       rows: int = 11) -> dict[str, Any]:
    """Small appends (a live batch of `rows` readings each) to a table with Delta's
    inline auto compaction on (before) and off (meterlake.core.compaction: compacted on a
    schedule, beside the stream): ms per append, and the scheduled OPTIMIZE's seconds."""
    from meterlake.core.compaction import compact, small_files
    from meterlake.core.tables import TABLE_PROPERTIES
    from silver.job import READINGS_SCHEMA

    batch = spark.createDataFrame(
        [(f"S{m:02d}", None, None, float(m), "t", 0, m, None) for m in range(rows)],
        READINGS_SCHEMA,
    ).cache()
    batch.count()
    results: dict[str, Any] = {"appends": appends, "rows": rows}
    for way, inline in (("inline", "true"), ("scheduled", "false")):
        path = root / way
        shutil.rmtree(path, ignore_errors=True)
        spark.sql(f"CREATE TABLE delta.`{path.resolve()}` ({READINGS_SCHEMA.toDDL()}) "
                  f"USING delta TBLPROPERTIES ('{next(iter(TABLE_PROPERTIES))}' = '{inline}')")
        times = []
        for _ in range(appends):
            began = time.perf_counter()
            batch.write.format("delta").mode("append").save(str(path))
            times.append((time.perf_counter() - began) * 1000)
        times = times[2:]
        ordered = sorted(times)
        results[way] = {
            "median_ms": round(statistics.median(times), 1),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "max_ms": round(ordered[-1], 1),
            "total_s": round(sum(times) / 1000, 2),
            "small_files": small_files(str(path)),
        }
        if way == "scheduled":
            began = time.perf_counter()
            compact(str(path))
            results[way]["optimize_s"] = round(time.perf_counter() - began, 2)
            results[way]["small_files_after"] = small_files(str(path))
        shutil.rmtree(path, ignore_errors=True)
    batch.unpersist()
    return results
