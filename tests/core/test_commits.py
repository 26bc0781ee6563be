"""meterlake.core.commits: a batch appended once per (application, batch id), on real Delta."""

from __future__ import annotations

import json

import pytest
from delta.tables import DeltaTable as SparkTable
from deltalake import DeltaTable

from meterlake.core.commits import BatchWriter
from meterlake.core.errors import MeterlakeError


def _rows(spark, path: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


class Appender:
    """A query whose checkpoint holds query_id (as Spark writes it), appending."""

    def __init__(self, tmp_path, query_id: str) -> None:
        checkpoint = tmp_path / f"checkpoint-{query_id}"
        checkpoint.mkdir(exist_ok=True)
        (checkpoint / "metadata").write_text(json.dumps({"id": query_id}) + "\n")
        self.writer = BatchWriter(checkpoint)

    def append(self, spark, rows, path: str, batch_id: int) -> bool:
        return self.writer.append(path, self.writer.application(spark), batch_id, rows)


def _batch(spark, *values: int):
    return spark.createDataFrame(
        [(v, f"row {v}") for v in values], "n INT, label STRING"
    ).selectExpr("n", "label", "timestamp_seconds(n) AS at")


def _arrow(spark, *values: int):
    """A batch as BatchWriter.append takes it."""
    return _batch(spark, *values).toArrow()


def test_a_batch_run_again_is_skipped_and_the_next_one_appended(spark, tmp_path) -> None:
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)  # the table, as ensure_table leaves it
    appender = Appender(tmp_path, "app")

    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is True
    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is False  # the replay
    assert appender.append(spark, _arrow(spark, 3), path, 1) is True
    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is False  # older: done too
    assert [row[:2] for row in _rows(spark, path)] == [(1, "row 1"), (2, "row 2"), (3, "row 3")]
    assert DeltaTable(path).transaction_version("app") == 1

    # The query restarted (a new process): it reads the table and skips the replay.
    again = Appender(tmp_path, "app")
    assert again.append(spark, _arrow(spark, 3), path, 1) is False
    assert again.append(spark, _arrow(spark, 5), path, 2) is True

    # A new checkpoint has a new query id: its batch 0 is not the old one (on a table
    # emptied first: the rows of another query are refused, below).
    DeltaTable(path).delete()
    assert Appender(tmp_path, "other-app").append(spark, _arrow(spark, 4), path, 0) is True
    table = DeltaTable(path)
    assert (table.transaction_version("app"), table.transaction_version("other-app")) == (2, 0)
    assert [row[0] for row in _rows(spark, path)] == [4]


def test_rows_keep_their_types_and_instants(spark, tmp_path) -> None:
    """Spark hands timestamps in the session's zone; the table stores the same instants."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    assert Appender(tmp_path, "app").append(spark, _arrow(spark, 86_400), path, 0) is True
    row = spark.read.format("delta").load(path).selectExpr("unix_seconds(at)", "n").first()
    assert tuple(row) == (86_400, 86_400)
    assert SparkTable.forPath(spark, path).toDF().schema == _batch(spark).schema


def test_a_failed_append_forgets_and_the_retry_reads_the_table(spark, tmp_path) -> None:
    """The write of batch 1 fails (a column the table does not have): the appender no
    longer trusts what it remembered; the retry of batch 0 is still skipped."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    appender = Appender(tmp_path, "app")
    assert appender.append(spark, _arrow(spark, 1), path, 0) is True
    wrong = spark.createDataFrame([(1,)], "other INT")
    with pytest.raises(Exception, match=r"(?i)schema"):
        appender.append(spark, wrong.toArrow(), path, 1)
    assert appender.append(spark, _arrow(spark, 1), path, 0) is False
    assert appender.append(spark, _arrow(spark, 2), path, 1) is True
    assert [row[0] for row in _rows(spark, path)] == [1, 2]


def test_a_table_from_before_transactions_is_refused_with_how_to_rebuild(spark, tmp_path) -> None:
    """Before 2026-12-07 an append recorded its batch in the commit's userMetadata, not
    as a Delta transaction: a table with rows and no transaction of the query is one
    line that says how to rebuild, and nothing is written."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    _batch(spark, 1).write.format("delta").mode("append").option(
        "userMetadata", '{"app":"app","batch":7}').save(path)
    appender = Appender(tmp_path, "app")
    with pytest.raises(MeterlakeError) as refused:
        appender.append(spark, _arrow(spark, 2), path, 8)
    line = str(refused.value)
    assert "\n" not in line
    assert f"{path} holds rows without a Delta transaction of this query (app)" in line
    assert "before 2026-12-07" in line
    assert f"delete its checkpoint {tmp_path / 'checkpoint-app'} and its tables" in line
    assert DeltaTable(path).version() == 1
