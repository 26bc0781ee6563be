"""meterlake.core.tables.ensure_table on real Delta tables: delta-rs for local tables,
Spark where delta-rs cannot read one."""

from __future__ import annotations

from deltalake.exceptions import DeltaError

from meterlake.core import tables
from meterlake.core.tables import TABLE_PROPERTIES, ensure_table
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
