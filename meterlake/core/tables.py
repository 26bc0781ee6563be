"""Creating Delta tables up front, so downstream streams can start on an empty lake."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType


# Streams append many small files. The pipeline compacts them on a schedule, beside
# the streams (meterlake.core.compaction), so no one has to run OPTIMIZE by hand; Delta's
# inline auto compaction is off, also on tables an older version created with it on:
# it made every fiftieth micro-batch seconds longer.
TABLE_PROPERTIES = {"delta.autoOptimize.autoCompact": "false"}


def ensure_table(
    spark: SparkSession,
    path: Path,
    schema: StructType,
    comment: str,
    partitioned_by: tuple[str, ...] = (),
) -> None:
    """Create an empty Delta table at path with schema and TABLE_PROPERTIES, unless it
    exists; a table created before a property was added gets it set."""
    from delta.tables import DeltaTable

    location = str(path.resolve()) if "://" not in str(path) else str(path)
    builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(schema)
    if partitioned_by:
        builder = builder.partitionedBy(*partitioned_by)
    for key, value in TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    table = builder.comment(comment).execute()
    have = table.detail().select("properties").first()[0] or {}
    missing = {k: v for k, v in TABLE_PROPERTIES.items() if have.get(k) != v}
    if missing:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        escaped = location.replace("`", "``")
        spark.sql(f"ALTER TABLE delta.`{escaped}` SET TBLPROPERTIES ({pairs})")


def checkpoint_query_id(spark: SparkSession, checkpoint: Path) -> str:
    """The id Spark wrote into a checkpoint's metadata file.

    A fresh checkpoint gets a fresh id, so idempotent Delta writes keyed on it
    (txnAppId) never skip the writes of a new query."""
    import json

    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    hpath = jvm.org.apache.hadoop.fs.Path(str(checkpoint / "metadata"))
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    stream = fs.open(hpath)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        return str(json.loads(reader.readLine())["id"])
    finally:
        stream.close()
