"""Writing a micro-batch to a Delta table once, even when Spark runs the batch again:
the one exactly-once writer of the three layers.

A streaming query that crashes after its Delta commit but before Spark's commit log
runs the same batch (same id) again on restart; the table must not take it twice.
Each commit records Delta's transaction (a `txn` action: application id, version =
the batch id), and a batch is skipped when the table's transaction for the
application is at that batch or later. The application id is made from the id of
the query's checkpoint (`QueryId`): a new checkpoint is a new application, whose
batch 0 is not the old one's.

Two modes, both written by delta-rs (the `deltalake` package) from the driver:

- `append` (bronze, silver): the batch's rows, as Spark's `toArrow()` gives them. A
  Spark append cost 0.2 s on an idle JVM and about 1 s in a live run beside two
  other queries on 2 cores, mostly the commit (snapshot, statistics, the
  transaction's lookup in the table's whole state); delta-rs appends the same rows in
  20-30 ms. What the driver holds is one batch, bounded by `[streams]
  max_offsets_per_trigger` (Kafka) and `bronze_bytes_per_trigger` (silver).
- `replace_partitions` (gold): read the partitions a batch touches, compute their new
  rows, and overwrite exactly those partitions (Spark's `replaceWhere`). A batch can
  come in steps (gold's steps of event time), one commit each, in order: each step's
  commit records the transaction (<app>-step, batch x STEP_SLOTS + step), the last
  one also (<app>, batch); a batch run again after a crash skips the steps already
  committed.

Each table is opened once per query start and its transaction read then; the last
batch is remembered, since one writer per table (the checkpoint lock) means nobody
else records this application. A failed write forgets the table, so the next attempt
reads it again. A table that holds rows but no transaction of the application was
written by a meterlake before 2026-12-07 (which tagged its commits otherwise): it is
refused with the line that says how to rebuild it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pyarrow as pa  # type: ignore[import-untyped]  # no stubs, no py.typed
import pyarrow.compute as pc  # type: ignore[import-untyped]
from deltalake import (
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)

from meterlake.core.checksum import write_checksum
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location
from meterlake.core.sparkinternals import checkpoint_query_id

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

UTC_MICROS = pa.timestamp("us", tz="UTC")
# A batch in steps records each step as a transaction of its own app id (<app>-step):
# version = batch id x STEP_SLOTS + the step's index in the batch.
STEP_SLOTS = 1 << 20

# The rows of the partitions a batch touches, before -> after its increments.
Merge = Callable[[pa.Table, pa.Table], pa.Table]


ONE_FILE = 1 << 50  # bytes: a target file size no batch reaches
# Appended files in row groups of this many rows: Spark splits a file for its tasks
# only between row groups, so a batch's one file is read by every core (a file of
# 100,000 bronze messages: 7 groups, about 2 MB; meterlake.core.session).
ROW_GROUP_ROWS = 16_384
APPENDED = WriterProperties(compression="SNAPPY", max_row_group_size=ROW_GROUP_ROWS)
# A table rewritten by finer keys within its partitions (halfhour_energy) is written
# sorted by them, in files of about this size, so that a file holds few of their
# values: an overwrite of some values rewrites only the files that hold them (delta-rs
# skips the others by their statistics). A day of 100,000 meters' half hours: about 16
# files of about 3 half hours each, and a live batch touching the day's last half hour
# copies a few hundred thousand rows, not the day's 4.8 million (one file per day for a
# few thousand meters).
CUT_FILE_BYTES = 4 << 20


def as_stored(rows: pa.Table) -> pa.Table:
    """Spark's Arrow rows as Delta stores them: timestamps are instants in UTC (Spark
    hands them in the session's time zone, the same instants)."""
    fields = [f.with_type(UTC_MICROS) if pa.types.is_timestamp(f.type) else f
              for f in rows.schema]
    return rows.cast(pa.schema(fields))


class QueryId:
    """The id of the streaming query whose checkpoint this is, read from the checkpoint
    when the first batch asks for it (its metadata exists from then on) and kept."""

    def __init__(self, checkpoint: Location) -> None:
        self.checkpoint = checkpoint
        self._id: str | None = None

    def get(self, spark: SparkSession) -> str:
        if self._id is None:
            self._id = checkpoint_query_id(spark, self.checkpoint)
        return self._id


def _literal(value: object) -> str:
    """A key's value in a delta-rs predicate: a date, or an instant in UTC."""
    if isinstance(value, datetime):
        return f"'{value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"
    assert isinstance(value, date)
    return f"'{value.isoformat()}'"


class Partitions:
    """The rows of one table a batch touches, read once, then kept as each step of the
    batch rewrites some of them. `keys`: the partition column, then any finer columns
    within it; the rows touched are those whose every key holds a value the batch's
    increments hold (halfhour_energy: the half hours of the days it touches, not the
    whole days)."""

    def __init__(self, table: DeltaTable, keys: Sequence[str], schema: pa.Schema,
                 increments: Sequence[pa.Table]) -> None:
        self.keys = keys
        touched = [_values(increments, key) for key in keys]
        where = pc.field(keys[0]).isin(touched[0])
        for key, values in zip(keys[1:], touched[1:], strict=True):
            where = where & pc.field(key).isin(values)
        self.rows = table.to_pyarrow_dataset().to_table(filter=where) \
            .select(schema.names).cast(schema)

    def replace(self, table: DeltaTable, increments: pa.Table, merge: Merge,
                transactions: list[Transaction]) -> None:
        """The rows increments touch, rewritten (`merge`) in one commit that records
        `transactions`: an overwrite of exactly those rows (delta-rs rewrites the rest
        of their files as they were; with finer keys, files cut by them: CUT_FILE_BYTES)."""
        values = [pc.unique(increments[key]) for key in self.keys]
        masks = [pc.is_in(self.rows[key], value_set=v) for key, v in zip(self.keys, values,
                                                                          strict=True)]
        touched = functools.reduce(pc.and_, masks)
        predicate = " AND ".join(
            f"{key} IN ({', '.join(_literal(x) for x in sorted(v.to_pylist()))})"
            for key, v in zip(self.keys, values, strict=True))
        rows = merge(self.rows.filter(touched), increments)
        cut = len(self.keys) > 1
        if cut:
            rows = rows.sort_by([(key, "ascending") for key in self.keys])
        write_deltalake(
            table,
            rows,
            mode="overwrite",
            predicate=predicate,
            target_file_size=CUT_FILE_BYTES if cut else None,
            commit_properties=CommitProperties(app_transactions=transactions),
        )
        write_checksum(table)
        self.rows = pa.concat_tables([self.rows.filter(pc.invert(touched)), rows])


def _values(tables: Sequence[pa.Table], key: str) -> pa.Array:
    """The distinct values of column key over tables."""
    return pc.unique(pa.concat_arrays([c for rows in tables for c in rows[key].chunks]))


class BatchWriter:
    """The writes of one streaming query (its checkpoint) to its Delta tables, each
    batch once per table; one application id per table. `application` is `prefix` +
    the checkpoint's query id (bronze, silver); gold makes one per table."""

    def __init__(self, checkpoint: Location, prefix: str = "") -> None:
        self.checkpoint, self.prefix = checkpoint, prefix
        self.query = QueryId(checkpoint)
        self._tables: dict[str, DeltaTable] = {}  # table path -> the table, open
        self._last: dict[str, int | None] = {}  # table path -> last batch written

    def application(self, spark: SparkSession) -> str:
        return self.prefix + self.query.get(spark)

    def append(self, path: str, app_id: str, batch_id: int, rows: pa.Table,
               one_file: bool = False) -> bool:
        """Append rows (a Spark DataFrame's `toArrow()`) unless app_id's batch_id (or a
        later batch) is in the table already; True when it appended. `one_file`: as
        one data file, however large (a Delta stream reading the table then takes the
        batch whole or not at all)."""

        def commit(table: DeltaTable) -> None:
            write_deltalake(table, as_stored(rows), mode="append",
                            target_file_size=ONE_FILE if one_file else None,
                            writer_properties=APPENDED,
                            commit_properties=CommitProperties(
                                app_transactions=[Transaction(app_id, batch_id)]))
            write_checksum(table)

        return self._once(path, app_id, batch_id, commit)

    def replace_partitions(self, path: str, app_id: str, batch_id: int,
                           steps: Sequence[pa.Table], keys: Sequence[str], schema: pa.Schema,
                           merge: Merge) -> bool:
        """Add a batch's increments (one table of them per step, in order; rows of
        `schema`, partitioned by `keys[0]`, rewritten by `keys`: Partitions) unless
        app_id's batch_id is in the table already: per step, the rows it touches
        rewritten by `merge` in one commit. True when it wrote."""
        stepped = len(steps) > 1
        step_app = f"{app_id}-step"

        def commit(table: DeltaTable) -> None:
            step_done = table.transaction_version(step_app) if stepped else None
            partitions = Partitions(table, keys, schema, steps)
            for number, rows in enumerate(steps):
                tag = batch_id * STEP_SLOTS + number
                if step_done is not None and step_done >= tag:
                    continue
                transactions = [Transaction(step_app, tag)] if stepped else []
                if number == len(steps) - 1:
                    transactions.append(Transaction(app_id, batch_id))
                partitions.replace(table, rows, merge, transactions)

        return self._once(path, app_id, batch_id, commit)

    def _once(self, path: str, app_id: str, batch_id: int,
              commit: Callable[[DeltaTable], None]) -> bool:
        try:
            table = self._tables.get(path)
            if table is None:
                table = self._tables[path] = DeltaTable(path)
                self._last[path] = self._last_batch(table, path, app_id)
            else:
                table.update_incremental()  # others' commits since (compaction)
            done = self._last[path]
            if done is not None and done >= batch_id:
                return False
            commit(table)
        except BaseException:
            self._tables.pop(path, None)  # the commit may or may not have landed
            raise
        self._last[path] = batch_id
        return True

    def _last_batch(self, table: DeltaTable, path: str, app_id: str) -> int | None:
        """The latest batch app_id wrote to the table, None if it wrote none (a batch
        cut short between its steps counts as none); MeterlakeError if the table holds
        rows this application's transactions do not account for."""
        done = table.transaction_version(app_id)
        if done is None and table.transaction_version(f"{app_id}-step") is None \
                and table.file_uris():
            raise MeterlakeError(
                f"{path} holds rows without a Delta transaction of this query ({app_id}): "
                "it was written by a meterlake before 2026-12-07. Rebuild what the query "
                f"writes: delete its checkpoint {self.checkpoint} and its tables, then run "
                "again (bronze is read again from Kafka, silver and gold from bronze)"
            )
        return done
