"""The bench's in-memory baseline (bench/queries.py, metric 6 and the served phase)
answers each view and ad-hoc query with the same rows as the lake: a view it lacked
(the wide q3, a SQL view only when asked for since 2026-12-07) failed both phases."""
from __future__ import annotations

from deltalake import write_deltalake

from bench.queries import ADHOC, GOLD, VIEWS, in_memory, memory_copy
from gold.answers import ANSWERS
from meterlake.core.config import Config
from meterlake.read.connection import connect
from tests.lake_helpers import write_fleet_gold


def test_the_in_memory_copy_answers_as_the_lake_does(config: Config) -> None:
    write_fleet_gold(config, 12, "2024-02-10")
    plans = ANSWERS["month_plan_cost"]
    write_deltalake(str(config.table_path(plans.table)), plans.arrow_schema.empty_table(),
                    partition_by=[plans.partition])
    lake, memory = connect(config, tables=GOLD), memory_copy(config)
    try:
        for sql in [f"SELECT * FROM {view}" for view in VIEWS] + list(ADHOC.values()):
            rows = sorted(lake.execute(sql).fetchall(), key=repr)
            assert rows and sorted(memory.execute(sql).fetchall(), key=repr) == rows, sql
    finally:
        lake.close()
        memory.close()
    assert set(in_memory(config, 1)) == {*VIEWS, *ADHOC}
