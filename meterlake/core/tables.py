"""Creating Delta tables up front, so downstream streams can start on an empty lake.

A table is looked up and created with delta-rs, reading and writing its log
directly: through Spark, creating one took 2.7-3.6 s on a loaded 2-core machine and
checking an existing one about 1 s, paid by every layer at every start (nine tables
for a run). On an object store delta-rs has the `[storage]` settings from the
environment (meterlake.core.storage.export) and commits with a conditional put;
where delta-rs cannot read a table, Spark does it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


# Streams append many small files. The pipeline compacts them on a schedule, beside
# the streams (meterlake.core.compaction), so no one has to run OPTIMIZE by hand; Delta's
# inline auto compaction is off, also on tables an older version created with it on:
# it made every fiftieth micro-batch seconds longer.
TABLE_PROPERTIES = {"delta.autoOptimize.autoCompact": "false"}


def _local_properties(location: str, schema: StructType, comment: str,
                      partitioned_by: tuple[str, ...]) -> dict[str, str]:
    """The properties of the table at location, opened with delta-rs, or created
    empty by it when there is none (no Spark job: a few ms against about 1 s to check a
    table and 3 s to create one on 2 cores). DeltaError when delta-rs cannot read it."""
    from deltalake import DeltaTable as Log
    from deltalake.exceptions import TableNotFoundError
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        table = Log(location)
        _check_columns(location, schema, table.schema().to_arrow().names)
    except TableNotFoundError:
        table = Log.create(
            location,
            to_arrow_schema(schema, timezone="UTC"),  # Spark's TimestampType: an instant
            mode="ignore",  # another process created it meanwhile
            partition_by=list(partitioned_by) or None,
            description=comment,
            configuration=dict(TABLE_PROPERTIES),
        )
    return dict(table.metadata().configuration)


def _check_columns(location: str, schema: StructType, have: list[str]) -> None:
    """MeterlakeError, one line, when the table lacks a column this meterlake writes."""
    missing = [name for name in schema.fieldNames() if name not in have]
    if missing:
        raise MeterlakeError(
            f"the table {location} was written by an older meterlake (no column "
            f"{', '.join(missing)}): rebuild the lake (delete it, then run or replay "
            "again; Kafka's retention permitting, the topic still has the readings)"
        )


def _spark_properties(spark: SparkSession, location: str, schema: StructType, comment: str,
                      partitioned_by: tuple[str, ...]) -> dict[str, str]:
    """The same through Spark: any filesystem Spark has credentials for, any feature."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(schema)
    if partitioned_by:
        builder = builder.partitionedBy(*partitioned_by)
    for key, value in TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    table = builder.comment(comment).execute()
    detail = table.detail().select("properties").first()  # a table's detail is one row
    return (detail[0] if detail is not None else None) or {}


def ensure_table(
    spark: SparkSession,
    path: Location,
    schema: StructType,
    comment: str,
    partitioned_by: tuple[str, ...] = (),
) -> None:
    """Create an empty Delta table at path with schema and TABLE_PROPERTIES, unless it
    exists; a table created before a property was added gets it set. A local table is
    looked up and created by delta-rs; Spark does it where delta-rs cannot read the
    table."""
    from deltalake.exceptions import DeltaError

    location = str(path.resolve()) if isinstance(path, Path) else str(path)
    have = None
    with contextlib.suppress(DeltaError):
        have = _local_properties(location, schema, comment, partitioned_by)
    if have is None:
        have = _spark_properties(spark, location, schema, comment, partitioned_by)
    missing = {k: v for k, v in TABLE_PROPERTIES.items() if have.get(k) != v}
    if missing:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        escaped = location.replace("`", "``")
        spark.sql(f"ALTER TABLE delta.`{escaped}` SET TBLPROPERTIES ({pairs})")


def read_appends(spark: SparkSession, path: Location, options: dict[str, str] | None = None
                 ) -> DataFrame:
    """The rows appended to a Delta table, as a stream. A query with a fresh checkpoint
    reads them commit by commit from the table's first version where its log still
    holds that version: Spark then reads the commits' JSON, where otherwise it first
    computes the table's snapshot with a Spark job (2.8 s of silver's first batch on
    a small lake on 2 cores, against 0.6 s). A log whose first versions are cleaned up
    is read from its snapshot. (A checkpoint that holds offsets goes on from them.)"""
    from deltalake import DeltaTable as Log
    from deltalake.exceptions import DeltaError

    location = str(path.resolve()) if isinstance(path, Path) else str(path)
    reader = spark.readStream.format("delta").options(**(options or {}))
    with contextlib.suppress(DeltaError, OSError):
        Log(location, version=0)
        reader = reader.option("startingVersion", "0")
    return reader.load(location)
