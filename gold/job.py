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

History by event time: with a step (`[streams] gold_step`, `--step 1h`) a batch's
sums are also keyed by the step of event time their reading falls in, and each
table takes one commit per step, in order, the partitions it touches read once
per batch: a catch-up of a month leaves a version per hour for `query --at`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from gold.answers import ANSWERS, Answer, in_steps, period_sums, priced_by_plans
from meterlake.core.commits import QueryId
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.steps import step_micros
from meterlake.core.streams import start_stream
from meterlake.core.tables import ensure_table
from meterlake.core.tariff import load_tariff

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

# The checkpoints of the gold layer before it was one query (one per table).
OLD_CHECKPOINTS = ("month_energy", "day_energy", "halfhour_energy", "day_cost")


# A batch in steps records each step as a transaction of its own app id (see GoldWriter):
# version = batch id x STEP_SLOTS + the step's index in the batch.
STEP_SLOTS = 1 << 20


class Partitions:
    """The rows of the partitions of one gold table a batch touches: read once, then
    kept as each step of the batch rewrites some of them."""

    def __init__(self, table: DeltaTable, answer: Answer, dates: list) -> None:
        self.answer = answer
        schema = answer.arrow_schema
        self.rows = table.to_pyarrow_dataset().to_table(
            filter=pc.field(answer.partition).isin(dates)).select(schema.names).cast(schema)

    def add(self, table: DeltaTable, increments: pa.Table,
            transactions: list[Transaction]) -> None:
        """Add increments: the partitions they touch, rewritten in one commit that
        records `transactions`."""
        key = self.answer.partition
        dates = pc.unique(increments[key])
        touched = pc.is_in(self.rows[key], value_set=dates)
        rows = self.answer.add(self.rows.filter(touched), increments, datetime.now(UTC))
        listed = ", ".join(f"'{d.isoformat()}'" for d in sorted(dates.to_pylist()))
        write_deltalake(
            table,
            rows,
            mode="overwrite",
            predicate=f"{key} IN ({listed})",
            commit_properties=CommitProperties(app_transactions=transactions),
        )
        self.rows = pa.concat_tables([self.rows.filter(pc.invert(touched)), rows])


def add_increments(
    table: DeltaTable, answer: Answer, increments: pa.Table, app_id: str, batch_id: int
) -> None:
    """Add increments to the table: the partitions they touch, rewritten in one commit
    that records (app_id, batch_id) as its transaction."""
    dates = pc.unique(increments[answer.partition]).to_pylist()
    Partitions(table, answer, dates).add(table, increments, [Transaction(app_id, batch_id)])


class GoldWriter:
    """foreachBatch of the gold query: a batch of pieces -> the gold tables, each
    batch once per table. The tables stay open between batches.

    With `[streams] gold_step` the batch is committed step by step of event time,
    in order: one version of each table per step. Each step's commit records the
    transaction (<table>-<query>-step, batch x STEP_SLOTS + step), the last one also
    (<table>-<query>, batch); a batch run again after a crash skips the steps
    already committed."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.query = QueryId(config.checkpoint("gold"))
        self.tables: dict[str, DeltaTable] = {}
        self.tariff = load_tariff(config.semantics.tariff, config.semantics.zone)
        self.step_us = step_micros(config.streams.gold_step)

    def _open(self, name: str) -> DeltaTable:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = DeltaTable(str(self.config.table_path(name)))
        else:
            table.update_incremental()
        return table

    def __call__(self, pieces: DataFrame, batch_id: int) -> None:
        query_id = self.query.get(pieces.sparkSession)
        sums = period_sums(pieces, self.step_us, self.config.semantics.zone).toArrow()
        if sums.num_rows == 0:
            return
        steps = in_steps(sums)
        if len(steps) > STEP_SLOTS:
            raise MeterlakeError(f"a gold batch of {len(steps):,} steps: use a longer --step")
        priced = [priced_by_plans(rows, self.tariff) for rows in steps]
        with ThreadPoolExecutor(len(ANSWERS)) as pool:  # delta-rs commits outside the GIL
            done = [pool.submit(self._write, answer, priced if answer.by_plan else steps,
                                f"{answer.table}-{query_id}", batch_id)
                    for answer in ANSWERS.values()]
            for future in done:
                future.result()

    def _write(self, answer: Answer, steps: list[pa.Table], app_id: str, batch_id: int) -> None:
        try:
            table = self._open(answer.table)
            done = table.transaction_version(app_id)
            if done is not None and done >= batch_id:
                return
            step_app = f"{app_id}-step"
            step_done = table.transaction_version(step_app) if len(steps) > 1 else None
            increments = [answer.increments(rows) for rows in steps]
            dates = pc.unique(pa.concat_arrays(
                [c for rows in increments for c in rows[answer.partition].chunks])).to_pylist()
            partitions = Partitions(table, answer, dates)
            for number, rows in enumerate(increments):
                tag = batch_id * STEP_SLOTS + number
                if step_done is not None and step_done >= tag:
                    continue
                transactions = [Transaction(step_app, tag)] if len(steps) > 1 else []
                if number == len(increments) - 1:
                    transactions.append(Transaction(app_id, batch_id))
                partitions.add(table, rows, transactions)
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
