"""meterlake.core.commits: a batch appended once per (application, batch id), on real Delta."""

from __future__ import annotations

import json

import pytest
from delta.tables import DeltaTable as SparkTable
from deltalake import DeltaTable

from meterlake.core.commits import (
    RECENT,
    BatchAppender,
    last_batch,
    read_tag,
    tagged_batch,
)


def _rows(spark, path: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def _appender(tmp_path, query_id: str) -> BatchAppender:
    """The appender of a query whose checkpoint holds query_id (as Spark writes it)."""
    checkpoint = tmp_path / f"checkpoint-{query_id}"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}) + "\n")
    return BatchAppender(checkpoint)


def batch_tag(app_id: str, batch_id: int) -> str:
    """The userMetadata of an append by meterlake before 2026-12-07."""
    return json.dumps({"app": app_id, "batch": batch_id}, separators=(",", ":"))


def _batch(spark, *values: int):
    return spark.createDataFrame(
        [(v, f"row {v}") for v in values], "n INT, label STRING"
    ).selectExpr("n", "label", "timestamp_seconds(n) AS at")


def _arrow(spark, *values: int):
    """A batch as BatchAppender takes it."""
    return _batch(spark, *values).toArrow()


def test_a_tag_reads_back_and_other_metadata_is_no_tag() -> None:
    assert read_tag(batch_tag("silver-1f2e", 41)) == ("silver-1f2e", 41)
    for other in (None, "", "a note by a user", "[1, 2]", '{"app": "x"}', '{"batch": 3}',
                  '{"app": "x", "batch": "three"}', "{"):
        assert read_tag(other) is None, other


def test_a_batch_run_again_is_skipped_and_the_next_one_appended(spark, tmp_path) -> None:
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)  # the table, as ensure_table leaves it
    assert last_batch(DeltaTable(path), "app") is None
    appender = _appender(tmp_path, "app")

    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is True
    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is False  # the replay
    assert appender.append(spark, _arrow(spark, 3), path, 1) is True
    assert appender.append(spark, _arrow(spark, 1, 2), path, 0) is False  # older: done too
    assert [row[:2] for row in _rows(spark, path)] == [(1, "row 1"), (2, "row 2"), (3, "row 3")]
    assert last_batch(DeltaTable(path), "app") == 1

    # The query restarted (a new process): it reads the table and skips the replay.
    again = BatchAppender(appender.checkpoint)
    assert again.append(spark, _arrow(spark, 3), path, 1) is False
    assert again.append(spark, _arrow(spark, 5), path, 2) is True

    # A new checkpoint has a new query id: its batch 0 is not the old one.
    assert _appender(tmp_path, "other-app").append(spark, _arrow(spark, 4), path, 0) is True
    table = DeltaTable(path)
    assert (table.transaction_version("app"), table.transaction_version("other-app")) == (2, 0)
    assert [row[0] for row in _rows(spark, path)] == [1, 2, 3, 4, 5]


def test_rows_keep_their_types_and_instants(spark, tmp_path) -> None:
    """Spark hands timestamps in the session's zone; the table stores the same instants."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    assert _appender(tmp_path, "app").append(spark, _arrow(spark, 86_400), path, 0) is True
    row = spark.read.format("delta").load(path).selectExpr("unix_seconds(at)", "n").first()
    assert tuple(row) == (86_400, 86_400)
    assert SparkTable.forPath(spark, path).toDF().schema == _batch(spark).schema


def test_a_failed_append_forgets_and_the_retry_reads_the_table(spark, tmp_path) -> None:
    """The write of batch 1 fails (a column the table does not have): the appender no
    longer trusts what it remembered; the retry of batch 0 is still skipped."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    appender = _appender(tmp_path, "app")
    assert appender.append(spark, _arrow(spark, 1), path, 0) is True
    wrong = spark.createDataFrame([(1,)], "other INT")
    with pytest.raises(Exception, match=r"(?i)schema"):
        appender.append(spark, wrong.toArrow(), path, 1)
    assert appender.append(spark, _arrow(spark, 1), path, 0) is False
    assert appender.append(spark, _arrow(spark, 2), path, 1) is True
    assert [row[0] for row in _rows(spark, path)] == [1, 2]


def test_a_table_tagged_by_an_older_meterlake_keeps_its_batches(spark, tmp_path) -> None:
    """Before 2026-12-07 an append recorded its batch in the commit's userMetadata. More
    than RECENT commits by others since (OPTIMIZE, a user's append): the whole history
    is read, the replay still skipped, the next batch appended."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    _batch(spark, 1).write.format("delta").mode("append").option(
        "userMetadata", batch_tag("app", 7)).save(path)
    for n in range(RECENT + 2):
        _batch(spark, 100 + n).write.format("delta").mode("append").save(path)
    SparkTable.forPath(spark, path).optimize().executeCompaction()

    assert tagged_batch(DeltaTable(path), "app") == last_batch(DeltaTable(path), "app") == 7
    restarted = _appender(tmp_path, "app")
    assert restarted.append(spark, _arrow(spark, 1), path, 7) is False
    assert restarted.append(spark, _arrow(spark, 2), path, 8) is True
    assert len(_rows(spark, path)) == 1 + RECENT + 2 + 1
    assert last_batch(DeltaTable(path), "app") == 8
