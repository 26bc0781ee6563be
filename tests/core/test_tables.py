"""meterlake.core.tables.ensure_table on real Delta tables: delta-rs for local tables,
Spark where delta-rs cannot read one."""

from __future__ import annotations

import pyarrow as pa
from deltalake.exceptions import DeltaError

from meterlake.core import tables
from meterlake.core.tables import TABLE_PROPERTIES, ensure_table, read_appends
from silver.job import READINGS_SCHEMA


def _properties(spark, path) -> dict[str, str]:
    return spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]


def test_a_local_table_is_created_once_with_its_schema_and_properties(spark, tmp_path) -> None:
    path = tmp_path / "readings"
    ensure_table(spark, path, READINGS_SCHEMA, "accepted readings")
    ensure_table(spark, path, READINGS_SCHEMA, "accepted readings")  # there: left as is
    assert spark.read.format("delta").load(str(path)).schema == READINGS_SCHEMA
    assert _properties(spark, path).items() >= TABLE_PROPERTIES.items()
    assert sorted(p.name for p in (path / "_delta_log").glob("*.json")) == [
        f"{0:020d}.json"]  # one commit: created once


def test_a_table_delta_rs_cannot_read_is_ensured_through_spark(spark, tmp_path, monkeypatch):
    def unreadable(*args):
        raise DeltaError("a reader feature delta-rs does not support")

    monkeypatch.setattr(tables, "_local_properties", unreadable)
    path = tmp_path / "readings"
    ensure_table(spark, path, READINGS_SCHEMA, "accepted readings")
    assert spark.read.format("delta").load(str(path)).schema == READINGS_SCHEMA
    assert _properties(spark, path).items() >= TABLE_PROPERTIES.items()


def _appended(spark, path, name: str) -> list[int]:
    """Every row read_appends gives a fresh query (once, availableNow), by its value."""
    query = (read_appends(spark, path).writeStream.format("memory").queryName(name)
             .option("checkpointLocation", str(path.parent / f"{name}-checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination(120)
    return sorted(r[0] for r in spark.sql(f"SELECT n FROM {name}").collect())


def test_appends_are_read_from_the_first_version_or_from_the_snapshot_when_it_is_gone(
    spark, tmp_path
) -> None:
    from deltalake import DeltaTable, write_deltalake

    path = tmp_path / "t"
    for n in range(3):  # versions 0, 1, 2: one row each
        write_deltalake(str(path), pa.table({"n": [n]}), mode="append")
    assert _appended(spark, path, "from_the_log") == [0, 1, 2]
    DeltaTable(str(path)).create_checkpoint()  # at version 2
    (path / "_delta_log" / f"{0:020d}.json").unlink()  # as a log cleanup leaves it
    assert _appended(spark, path, "from_the_snapshot") == [0, 1, 2]
