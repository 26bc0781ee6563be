"""Appending a micro-batch to a Delta table once, even when Spark runs the batch again.

A streaming query that crashes after its Delta commit but before Spark's commit log
runs the same batch (same id) again on restart; the table must not take it twice.
Delta's own idempotent writes (`txnAppId`/`txnVersion`) look the application's last
version up in the table's whole state, which Delta 4.4 rebuilds with a Spark job on
every write: measured here, 0.9-1.3 s per small append against 0.4 s without
(bench/README.md). So each append is tagged instead, in its commit's `userMetadata`,
with (application id, batch id), and a batch is skipped when the table holds that
tag or a later one of the same application.

The history is read once per table when a query starts (newest first, a few commits
at a time), then the last batch is remembered: one writer per table (the checkpoint
lock) means nobody else adds this application's tags. A failed append forgets what
it remembered, so the next attempt reads the history again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.core.checkpoints import is_local
from meterlake.core.tables import checkpoint_query_id

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


def _user_metadata(spark: SparkSession, path: str, limit: int | None) -> list[str | None]:
    """The userMetadata of a table's latest `limit` commits (all: None), newest first:
    read from the log by delta-rs where it is local (milliseconds), else by Spark (also
    where delta-rs cannot read the table)."""
    from deltalake import DeltaTable as Log
    from deltalake.exceptions import DeltaError

    if is_local(path):
        with contextlib.suppress(DeltaError):
            return [commit.get("userMetadata") for commit in Log(path).history(limit)]
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, path)
    history = table.history(limit) if limit else table.history()
    return [row[0] for row in history.select("userMetadata").collect()]


def last_batch(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The latest batch id app_id appended to the table at path, None if it never did."""
    for limit in (RECENT, None):
        found = _user_metadata(spark, path, limit)
        tags = (read_tag(metadata) for metadata in found)
        batches = [tag[1] for tag in tags if tag and tag[0] == app_id]
        if batches:
            return max(batches)
        if limit and len(found) < limit:  # that was the whole history
            return None
    return None


class QueryId:
    """The id of the streaming query whose checkpoint this is, read from the checkpoint
    when the first batch asks for it (its metadata exists from then on) and kept.

    The application ids of a query's exactly-once writes are made from it (here, and
    gold's Delta transactions): a new checkpoint is a new application, whose batch 0
    is not the old one's."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self._id: str | None = None

    def get(self, spark: SparkSession) -> str:
        if self._id is None:
            self._id = checkpoint_query_id(spark, self.checkpoint)
        return self._id


class BatchAppender:
    """The appends of one streaming query (its checkpoint) to its Delta tables; the
    application id is `prefix` + the checkpoint's query id (QueryId)."""

    def __init__(self, checkpoint: Path, prefix: str = "") -> None:
        self.checkpoint, self.prefix = checkpoint, prefix
        self.query = QueryId(checkpoint)
        self._last: dict[str, int | None] = {}  # table path -> last batch appended

    def application(self, spark: SparkSession) -> str:
        return self.prefix + self.query.get(spark)

    def append(self, batch: DataFrame, path: str, batch_id: int) -> bool:
        """Append batch to the table at path unless this application's batch_id (or a
        later batch) is already there; True when it appended."""
        app_id = self.application(batch.sparkSession)
        if path not in self._last:
            self._last[path] = last_batch(batch.sparkSession, path, app_id)
        done = self._last[path]
        if done is not None and done >= batch_id:
            return False
        try:
            (
                batch.write.format("delta")
                .mode("append")
                .option("userMetadata", batch_tag(app_id, batch_id))
                .save(path)
            )
        except BaseException:
            del self._last[path]  # the commit may or may not have landed
            raise
        self._last[path] = batch_id
        return True
