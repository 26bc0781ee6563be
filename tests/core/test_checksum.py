"""Version checksum files of delta-rs commits (meterlake.core.checksum), held to what
Spark computes from the log."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from py4j.protocol import Py4JJavaError
from pyspark.sql.types import LongType, StructField, StructType

from meterlake.core.checksum import write_checksum
from meterlake.core.commits import BatchWriter
from meterlake.core.compaction import compact
from meterlake.core.tables import ensure_table


def _spark_snapshot(spark, path):
    """Spark's snapshot of the table's latest version, loaded afresh."""
    delta_log = spark._jvm.org.apache.spark.sql.delta.DeltaLog
    delta_log.clearCache()
    return delta_log.forTable(spark._jsparkSession, str(path)).unsafeVolatileSnapshot()


def _valid(spark, snapshot) -> bool:
    empty = getattr(getattr(spark._jvm.scala.collection.immutable, "Map$"), "MODULE$").empty()
    return snapshot.validateChecksum(empty)


def _rows(n: int) -> pa.Table:
    return pa.table({"a": pa.array(range(n), pa.int64())})


def test_each_commit_gets_the_checksum_spark_computes(spark, tmp_path) -> None:
    """On a table made as the layers make theirs (meterlake.core.tables.ensure_table:
    Spark writes no checksum for it), from the second version on."""
    path = tmp_path / "t"
    ensure_table(spark, path, StructType([StructField("a", LongType())]), "a table")
    writer = BatchWriter(tmp_path / "checkpoint")
    for batch in range(3):
        assert writer.append(str(path), "app", batch, _rows(batch + 1))
    compact(str(path))  # four files into one
    log = path / "_delta_log"
    assert sorted(p.name for p in log.glob("[0-9]*.crc")) == [f"{v:020d}.crc" for v in range(1, 5)]
    checksum = json.loads((log / f"{4:020d}.crc").read_text())
    assert (checksum["numFiles"], checksum["numMetadata"], checksum["numProtocol"]) == (1, 1, 1)
    snapshot = _spark_snapshot(spark, path)
    assert snapshot.version() == 4 and snapshot.checksumOpt().isDefined()
    assert _valid(spark, snapshot)
    assert spark.read.format("delta").load(str(path)).count() == 6


def test_no_checksum_after_a_commit_that_changes_the_metadata(spark, tmp_path) -> None:
    path = tmp_path / "t"
    spark.range(0).selectExpr("id AS a").write.format("delta").save(str(path))
    table = DeltaTable(str(path))
    wider = pa.table({"a": pa.array([1], pa.int64()), "b": pa.array(["x"])})
    write_deltalake(table, wider, mode="append", schema_mode="merge")
    assert not write_checksum(table)  # its metadata is not the previous checksum's
    write_deltalake(table, wider, mode="append")
    assert not write_checksum(table)  # nothing to take the metadata from
    snapshot = _spark_snapshot(spark, path)
    assert snapshot.version() == 2 and not snapshot.checksumOpt().isDefined()
    assert [f.name for f in spark.read.format("delta").load(str(path)).schema] == ["a", "b"]


def test_a_version_without_checksum_is_read_past(spark, tmp_path) -> None:
    """A crash between a commit and its checksum: the next commit's is made from the
    one before."""
    path = tmp_path / "t"
    spark.range(0).selectExpr("id AS a").write.format("delta").save(str(path))
    table = DeltaTable(str(path))
    write_deltalake(table, _rows(1), mode="append")  # version 1, no checksum
    write_deltalake(table, _rows(2), mode="append")
    assert write_checksum(table)
    log = path / "_delta_log"
    assert sorted(p.name for p in log.glob("[0-9]*.crc")) == [f"{v:020d}.crc" for v in (0, 2)]
    assert _valid(spark, _spark_snapshot(spark, path))


def test_spark_refuses_a_checksum_that_does_not_match(spark, tmp_path) -> None:
    """The check the tests above pass can fail: a file count one too many."""
    path = tmp_path / "t"
    spark.range(0).selectExpr("id AS a").write.format("delta").save(str(path))
    table = DeltaTable(str(path))
    write_deltalake(table, _rows(2), mode="append")
    assert write_checksum(table)
    crc = path / "_delta_log" / f"{1:020d}.crc"
    checksum = json.loads(crc.read_text())
    crc.write_text(json.dumps({**checksum, "numFiles": checksum["numFiles"] + 1}))
    with pytest.raises(Py4JJavaError, match="Number of files - Expected: 2 Computed: 1"):
        _valid(spark, _spark_snapshot(spark, path))
