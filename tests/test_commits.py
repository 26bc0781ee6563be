"""meterlake.commits: a batch appended once per (application, batch id), on real Delta."""

from __future__ import annotations

from delta.tables import DeltaTable

from meterlake.commits import RECENT, append_batch, batch_tag, last_batch, read_tag


def _rows(spark, path: str) -> list[tuple[int, str]]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def _batch(spark, *values: int):
    return spark.createDataFrame([(v, f"row {v}") for v in values], "n INT, label STRING")


def test_a_tag_reads_back_and_other_metadata_is_no_tag() -> None:
    assert read_tag(batch_tag("silver-1f2e", 41)) == ("silver-1f2e", 41)
    for other in (None, "", "a note by a user", "[1, 2]", '{"app": "x"}', '{"batch": 3}',
                  '{"app": "x", "batch": "three"}', "{"):
        assert read_tag(other) is None, other


def test_a_batch_run_again_is_skipped_and_the_next_one_appended(spark, tmp_path) -> None:
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)  # the table, as ensure_table leaves it
    assert last_batch(spark, path, "app") is None

    assert append_batch(_batch(spark, 1, 2), path, "app", 0) is True
    assert append_batch(_batch(spark, 1, 2), path, "app", 0) is False  # the replay
    assert append_batch(_batch(spark, 3), path, "app", 1) is True
    assert append_batch(_batch(spark, 1, 2), path, "app", 0) is False  # older: done too
    assert _rows(spark, path) == [(1, "row 1"), (2, "row 2"), (3, "row 3")]
    assert last_batch(spark, path, "app") == 1

    # A new checkpoint has a new query id: its batch 0 is not the old one.
    assert append_batch(_batch(spark, 4), path, "other-app", 0) is True
    assert _rows(spark, path)[-1] == (4, "row 4")
    history = DeltaTable.forPath(spark, path).history().select("userMetadata").collect()
    assert [read_tag(r[0]) for r in history][:4] == [
        ("other-app", 0), ("app", 1), ("app", 0), None]


def test_the_tag_is_found_behind_many_other_commits(spark, tmp_path) -> None:
    """More than RECENT commits by others (OPTIMIZE, a user's untagged append) since the
    application's last append: the whole history is read, the replay still skipped."""
    path = str(tmp_path / "t")
    _batch(spark).write.format("delta").save(path)
    assert append_batch(_batch(spark, 1), path, "app", 7) is True
    for n in range(RECENT + 2):
        _batch(spark, 100 + n).write.format("delta").mode("append").save(path)
    DeltaTable.forPath(spark, path).optimize().executeCompaction()

    assert last_batch(spark, path, "app") == 7
    assert append_batch(_batch(spark, 1), path, "app", 7) is False
    assert len(_rows(spark, path)) == 1 + RECENT + 2
