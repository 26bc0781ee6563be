"""Gold: silver pieces (Delta stream) -> the four answer tables, one query each.

Each query adds its batch's increments to its table with a Delta MERGE in
foreachBatch. MERGE is made idempotent with Delta's transaction ids
(txnAppId = table + this checkpoint's query id, txnVersion = batch id): when
Spark replays a batch after a crash, Delta skips a MERGE it already committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delta.tables import DeltaTable
from pyspark.sql import DataFrame

from gold.answers import ANSWERS, Answer
from meterlake.config import Config
from meterlake.tables import checkpoint_query_id, ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"


def merge_increments(spark: SparkSession, answer: Answer, path: str, increments: DataFrame) -> None:
    """Add increments to the table: one row per key, updated in place. `updated_at` is
    set here, not in the increments: a source without current_timestamp() is
    deterministic, so Delta does not first copy it aside (merge.materializeSource)."""
    condition = " AND ".join(f"t.{k} = s.{k}" for k in answer.keys)
    inserted = {c: f"s.{c}" for c in (*answer.keys, answer.value, "as_of")}
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(increments.alias("s"), condition)
        .whenMatchedUpdate(
            set={
                answer.value: f"t.{answer.value} + s.{answer.value}",
                "as_of": "greatest(t.as_of, s.as_of)",
                "updated_at": "current_timestamp()",
            }
        )
        .whenNotMatchedInsert(values={**inserted, "updated_at": "current_timestamp()"})
        .execute()
    )


def upsert_batch(config: Config, answer: Answer):
    """foreachBatch for one gold table."""
    path = str(config.table_path(answer.table))
    app_id: dict[str, str] = {}

    def upsert(pieces: DataFrame, batch_id: int) -> None:
        spark = pieces.sparkSession
        if "id" not in app_id:
            query_id = checkpoint_query_id(spark, config.checkpoint(answer.table))
            app_id["id"] = f"{answer.table}-{query_id}"
        spark.conf.set(TXN_APP_ID, app_id["id"])
        spark.conf.set(TXN_VERSION, str(batch_id))
        try:
            merge_increments(spark, answer, path, pieces.transform(answer.increments))
        finally:
            spark.conf.unset(TXN_APP_ID)
            spark.conf.unset(TXN_VERSION)

    return upsert


def start_gold(spark: SparkSession, config: Config, table: str, once: bool) -> StreamingQuery:
    """One query per gold table, in its own session (the txn settings are per session)."""
    answer = ANSWERS[table]
    ensure_table(spark, config.table_path(table), answer.schema, answer.comment)
    session = spark.newSession()
    pieces = session.readStream.format("delta").load(str(config.table_path("silver")))
    writer = (
        pieces.writeStream.queryName(table)
        .option("checkpointLocation", str(config.checkpoint(table)))
        .foreachBatch(upsert_batch(config, answer))
    )
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=config.streams.trigger(table))
    )
    return writer.start()
