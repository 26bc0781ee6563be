"""Appending a micro-batch to a Delta table once, even when Spark runs the batch again.

A streaming query that crashes after its Delta commit but before Spark's commit log
runs the same batch (same id) again on restart; the table must not take it twice.
Delta's own idempotent writes (`txnAppId`/`txnVersion`) look the application's last
version up in the table's whole state, which Delta 4.4 rebuilds with a Spark job on
every write: measured here, 0.9-1.3 s per small append against 0.4 s without
(bench/README.md). So each append is tagged instead, in its commit's `userMetadata`,
with (application id, batch id), and a batch is skipped when the table's history
already holds that tag or a later one of the same application. The history is
read newest first, a few commits at a time: one writer per table (the checkpoint
lock) means the application's last tag is among the latest commits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RECENT = 10  # commits read first; the whole history only if the tag is not among them


def batch_tag(app_id: str, batch_id: int) -> str:
    return json.dumps({"app": app_id, "batch": batch_id}, separators=(",", ":"))


def read_tag(user_metadata: str | None) -> tuple[str, int] | None:
    """(application id, batch id) of a commit's userMetadata, None if it is no tag."""
    try:
        tag = json.loads(user_metadata or "")
        return str(tag["app"]), int(tag["batch"])
    except (ValueError, TypeError, KeyError):
        return None


def last_batch(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The latest batch id app_id appended to the table at path, None if it never did."""
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, path)
    for limit in (RECENT, None):
        history = table.history(limit) if limit else table.history()
        rows = history.select("userMetadata").collect()
        tags = (read_tag(row[0]) for row in rows)
        batches = [tag[1] for tag in tags if tag and tag[0] == app_id]
        if batches:
            return max(batches)
        if limit and len(rows) < limit:  # that was the whole history
            return None
    return None


def append_batch(batch: DataFrame, path: str, app_id: str, batch_id: int) -> bool:
    """Append batch to the Delta table at path unless app_id's batch_id (or a later
    batch) is already there; True when it appended."""
    done = last_batch(batch.sparkSession, path, app_id)
    if done is not None and done >= batch_id:
        return False
    (
        batch.write.format("delta")
        .mode("append")
        .option("userMetadata", batch_tag(app_id, batch_id))
        .save(path)
    )
    return True
