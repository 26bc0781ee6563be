"""Compaction on a schedule (meterlake.core.compaction), on real Delta tables."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from delta.tables import DeltaTable

from meterlake.core.compaction import Compactor, compact_due, small_files
from meterlake.core.tables import ensure_table
from silver.job import READINGS_SCHEMA

pytestmark = pytest.mark.slow


def _scheduled(config, every_s: float = 0.2, min_files: int = 5):
    streams = replace(config.streams, compact_every_s=every_s, compact_min_files=min_files)
    return replace(config, streams=streams)


def _append_small_files(spark, config, count: int) -> str:
    path = str(config.table_path("readings"))
    ensure_table(spark, config.table_path("readings"), READINGS_SCHEMA, "accepted readings")
    for i in range(count):
        spark.createDataFrame(
            [("X", None, None, float(i), "t", 0, i, None)], READINGS_SCHEMA
        ).write.format("delta").mode("append").save(path)
    return path


def _energies(spark, path: str) -> list[float]:
    return sorted(r[0] for r in spark.read.format("delta").load(path).select("energy").collect())


def test_a_table_is_compacted_once_it_has_enough_small_files(spark, config) -> None:
    config = _scheduled(config, min_files=5)
    path = _append_small_files(spark, config, 4)
    assert small_files(path) == 4
    assert compact_due(config, ["silver"]) == []  # 4 < 5: left alone
    _append_small_files(spark, config, 1)
    assert compact_due(config, ["silver"]) == ["readings"]
    assert small_files(path) == 1
    assert _energies(spark, path) == [0.0, 0.0, 1.0, 2.0, 3.0]
    last = DeltaTable.forPath(spark, path).history(1).first()
    assert last["operation"] == "OPTIMIZE"  # no data change: streams skip it


def test_only_the_layers_run_are_compacted(spark, config) -> None:
    config = _scheduled(config, min_files=2)
    path = _append_small_files(spark, config, 3)
    assert compact_due(config, ["bronze", "gold"]) == []
    assert small_files(path) == 3


def test_the_live_run_compacts_beside_the_streams_every_interval(spark, config) -> None:
    config = _scheduled(config, every_s=0.2, min_files=3)
    path = _append_small_files(spark, config, 3)
    with Compactor(config, ["silver"]) as compactor:
        deadline = time.monotonic() + 60
        while not any(tables for _, tables in compactor.rounds):
            assert time.monotonic() < deadline, "no compaction within 60 s"
            time.sleep(0.1)
        _append_small_files(spark, config, 1)  # appends go on beside it
    assert ["readings"] in [tables for _, tables in compactor.rounds]
    assert small_files(path) <= 2
    assert len(_energies(spark, path)) == 4


def test_a_failed_round_is_logged_and_the_next_round_goes_on(spark, config, caplog) -> None:
    config = _scheduled(config, every_s=0.1, min_files=1)
    path = config.table_path("readings")
    path.mkdir(parents=True)
    (path / "_delta_log").mkdir()
    (path / "_delta_log" / "00000000000000000000.json").write_text("not json\n")
    with caplog.at_level("WARNING", "meterlake.core.compaction"):
        with Compactor(config, ["silver"]) as compactor:
            deadline = time.monotonic() + 30
            while "compaction failed" not in caplog.text:
                assert time.monotonic() < deadline, "no failed round within 30 s"
                time.sleep(0.1)
            time.sleep(0.3)
            assert compactor.running
    assert not compactor.running
