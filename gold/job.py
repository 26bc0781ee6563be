"""Gold: silver pieces (Delta stream) -> the answer tables, in one query: the four
answers and the plans compared (each meter's month cost under every tariff plan).

Each micro-batch of pieces is summed once in Spark, per sensor and half-hour period
(gold.answers.period_sums), and comes to the driver as Arrow: a few rows per sensor
and period, however many pieces the batch held. Each gold table is partitioned by
its date key (day, or month for Q1): for each table the job reads the partitions
the batch touches, adds the increments in Arrow (`Answer.add`) and writes those
partitions back in one commit with delta-rs (the `deltalake` package), an overwrite
of exactly them (Spark's `replaceWhere`). Spark's own MERGE cost 1.7-2.7 s per table
and batch on 2 cores, mostly planning and code generation for a few hundred rows
(bench/README.md). The tables stay plain Delta tables, which Spark, DuckDB and
delta-rs read alike, with one row per key.

Exactly once: each commit records Delta's transaction id (a `txn` action: appId =
table + this checkpoint's query id, version = the batch id). When Spark runs a batch
again after a crash, a table whose transaction is already at that batch is skipped.
A batch without pieces commits nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from gold.answers import ANSWERS, Answer, period_sums, priced_by_plans
from meterlake.core.commits import QueryId
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.streams import start_stream
from meterlake.core.tables import ensure_table
from meterlake.core.tariff import load_tariff

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

# The checkpoints of the gold layer before it was one query (one per table).
OLD_CHECKPOINTS = ("month_energy", "day_energy", "halfhour_energy", "day_cost")


def add_increments(
    table: DeltaTable, answer: Answer, increments: pa.Table, app_id: str, batch_id: int
) -> None:
    """Add increments to the table: the partitions they touch, rewritten in one commit
    that records (app_id, batch_id) as its transaction."""
    dates = pc.unique(increments[answer.partition]).to_pylist()
    current = table.to_pyarrow_dataset().to_table(filter=pc.field(answer.partition).isin(dates))
    rows = answer.add(current, increments, datetime.now(UTC))
    listed = ", ".join(f"'{d.isoformat()}'" for d in sorted(dates))
    write_deltalake(
        table,
        rows,
        mode="overwrite",
        predicate=f"{answer.partition} IN ({listed})",
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id, batch_id)]),
    )


class GoldWriter:
    """foreachBatch of the gold query: a batch of pieces -> the four tables, each
    batch once per table. The tables stay open between batches."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.query = QueryId(config.checkpoint("gold"))
        self.tables: dict[str, DeltaTable] = {}
        self.tariff = load_tariff(config.semantics.tariff, config.semantics.zone)

    def _open(self, name: str) -> DeltaTable:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = DeltaTable(str(self.config.table_path(name)))
        else:
            table.update_incremental()
        return table

    def __call__(self, pieces: DataFrame, batch_id: int) -> None:
        query_id = self.query.get(pieces.sparkSession)
        sums = period_sums(pieces).toArrow()
        if sums.num_rows == 0:
            return
        by_plan = priced_by_plans(sums, self.tariff)
        for answer in ANSWERS.values():
            app_id = f"{answer.table}-{query_id}"
            try:
                table = self._open(answer.table)
                done = table.transaction_version(app_id)
                if done is None or done < batch_id:
                    rows = by_plan if answer.by_plan else sums
                    add_increments(table, answer, answer.increments(rows), app_id, batch_id)
            except BaseException:
                self.tables.pop(answer.table, None)  # reopened from the log next time
                raise


def check_layout(config: Config) -> None:
    """A lake whose gold was written by one query per table (before 2026-12) has the
    old checkpoints and unpartitioned tables: it is rebuilt from silver, not mixed."""
    old = [name for name in OLD_CHECKPOINTS
           if isinstance(where := config.checkpoint(name), Path) and where.exists()]
    if old:
        gold = config.table_path(old[0]).parent
        raise MeterlakeError(
            f"{config.lake} has gold from an older meterlake (checkpoints "
            f"{', '.join(old)}); rebuild it from silver: remove {gold} and "
            f"{config.checkpoint('')}{{{','.join(old)}}}, then run --layers gold --once"
        )


def ensure_gold_tables(spark: SparkSession, config: Config) -> None:
    for answer in ANSWERS.values():
        path = config.table_path(answer.table)
        ensure_table(spark, path, answer.schema, answer.comment, (answer.partition,))


def start_gold(spark: SparkSession, config: Config, once: bool) -> StreamingQuery:
    check_layout(config)
    ensure_gold_tables(spark, config)
    pieces = spark.readStream.format("delta").load(str(config.table_path("silver")))
    return start_stream(pieces, "gold", config, GoldWriter(config), once)
