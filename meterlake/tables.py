"""Creating Delta tables up front, so downstream streams can start on an empty lake."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType


def ensure_table(spark: SparkSession, path: Path, schema: StructType, comment: str) -> None:
    """Create an empty Delta table at path with schema, unless it exists."""
    from delta.tables import DeltaTable

    (
        DeltaTable.createIfNotExists(spark)
        .location(str(path.resolve()) if "://" not in str(path) else str(path))
        .addColumns(schema)
        .comment(comment)
        .execute()
    )


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
