"""Appending a micro-batch to a Delta table once, even when Spark runs the batch again.

A streaming query that crashes after its Delta commit but before Spark's commit log
runs the same batch (same id) again on restart; the table must not take it twice.
Each append records Delta's transaction (a `txn` action: application id, version =
the batch id), and a batch is skipped when the table's transaction for the
application is at that batch or later.

The batch comes to the driver as Arrow and is written by delta-rs (the `deltalake`
package), as gold's answers are: a Spark append cost 0.2 s on an idle JVM and about
1 s in a live run beside two other queries on 2 cores, mostly the commit (snapshot,
statistics, the transaction's lookup in the table's whole state); delta-rs appends
the same rows in 20-30 ms (bench/README.md). What the driver holds is one batch,
bounded by `[streams] max_offsets_per_trigger` (Kafka) and `bronze_bytes_per_trigger`
(silver reading bronze).

Each table is opened once per query and its transaction read then; the last batch is
remembered, since one writer per table (the checkpoint lock) means nobody else
records this application. A failed append forgets the table, so the next attempt
reads it again. Tables written by meterlake before 2026-12-07 recorded the batch as
a tag in the commit's userMetadata instead: it is still read, once per table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa  # type: ignore[import-untyped]  # no stubs, no py.typed
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from meterlake.core.location import Location
from meterlake.core.tables import checkpoint_query_id

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RECENT = 10  # commits searched for an old tag first; the whole history only if not there
UTC_MICROS = pa.timestamp("us", tz="UTC")


def read_tag(user_metadata: str | None) -> tuple[str, int] | None:
    """(application id, batch id) of a commit's userMetadata tag, as meterlake wrote
    them before 2026-12-07 (`{"app": ..., "batch": ...}`); None if it is no tag."""
    try:
        tag = json.loads(user_metadata or "")
        return str(tag["app"]), int(tag["batch"])
    except (ValueError, TypeError, KeyError):
        return None


def tagged_batch(table: DeltaTable, app_id: str) -> int | None:
    """The latest batch id app_id tagged in the table's userMetadata, None if none."""
    for limit in (RECENT, None):
        found = [commit.get("userMetadata") for commit in table.history(limit)]
        tags = (read_tag(metadata) for metadata in found)
        batches = [tag[1] for tag in tags if tag and tag[0] == app_id]
        if batches:
            return max(batches)
        if limit and len(found) < limit:  # that was the whole history
            return None
    return None


def last_batch(table: DeltaTable, app_id: str) -> int | None:
    """The latest batch app_id appended to the table, None if it never did."""
    found = [table.transaction_version(app_id), tagged_batch(table, app_id)]
    return max((b for b in found if b is not None), default=None)


def as_stored(rows: pa.Table) -> pa.Table:
    """Spark's Arrow rows as Delta stores them: timestamps are instants in UTC (Spark
    hands them in the session's time zone, the same instants)."""
    fields = [f.with_type(UTC_MICROS) if pa.types.is_timestamp(f.type) else f
              for f in rows.schema]
    return rows.cast(pa.schema(fields))


class QueryId:
    """The id of the streaming query whose checkpoint this is, read from the checkpoint
    when the first batch asks for it (its metadata exists from then on) and kept.

    The application ids of a query's exactly-once writes are made from it (here, and
    gold's): a new checkpoint is a new application, whose batch 0 is not the old one's."""

    def __init__(self, checkpoint: Location) -> None:
        self.checkpoint = checkpoint
        self._id: str | None = None

    def get(self, spark: SparkSession) -> str:
        if self._id is None:
            self._id = checkpoint_query_id(spark, self.checkpoint)
        return self._id


class BatchAppender:
    """The appends of one streaming query (its checkpoint) to its Delta tables; the
    application id is `prefix` + the checkpoint's query id (QueryId)."""

    def __init__(self, checkpoint: Location, prefix: str = "") -> None:
        self.checkpoint, self.prefix = checkpoint, prefix
        self.query = QueryId(checkpoint)
        self._tables: dict[str, DeltaTable] = {}  # table path -> the table, open
        self._last: dict[str, int | None] = {}  # table path -> last batch appended

    def application(self, spark: SparkSession) -> str:
        return self.prefix + self.query.get(spark)

    def append(self, spark: SparkSession, rows: pa.Table, path: str, batch_id: int) -> bool:
        """Append rows (a Spark DataFrame's `toArrow()`) to the table at path unless
        this application's batch_id (or a later batch) is already there; True when it
        appended."""
        app_id = self.application(spark)
        try:
            table = self._tables.get(path)
            if table is None:
                table = self._tables[path] = DeltaTable(path)
                self._last[path] = last_batch(table, app_id)
            done = self._last[path]
            if done is not None and done >= batch_id:
                return False
            table.update_incremental()  # others' commits since (compaction)
            write_deltalake(
                table,
                as_stored(rows),
                mode="append",
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(app_id, batch_id)]
                ),
            )
        except BaseException:
            self._tables.pop(path, None)  # the commit may or may not have landed
            raise
        self._last[path] = batch_id
        return True
