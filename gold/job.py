"""Gold: silver pieces (Delta stream) -> the answer tables, in one query: the four
answers and the plans compared (each meter's month cost under every tariff plan).

Each micro-batch of pieces is summed once in Spark, per sensor and half-hour period
(gold.answers.period_sums), and comes to the driver as Arrow: a few rows per sensor
and period, however many pieces the batch held. Each gold table is partitioned by
its date key (day, or month for Q1): for each table the job reads the partitions
the batch touches (for Q3 only their touched half hours), adds the increments in
Arrow (`Answer.add`) and writes those rows back in one commit with delta-rs (the
`deltalake` package), an overwrite of exactly them (Spark's `replaceWhere`).
Spark's own MERGE cost 1.7-2.7 s per table and batch on 2 cores, mostly planning
and code generation for a few hundred rows (bench/README.md). The tables stay plain
Delta tables, which Spark, DuckDB and delta-rs read alike, with one row per key.

Exactly once: the writes go through meterlake.core.commits (`replace_partitions`),
whose commits record Delta's transaction (appId = table + this checkpoint's query id,
version = the batch id). When Spark runs a batch again after a crash, a table whose
transaction is already at that batch is skipped. A batch without pieces commits
nothing.

History by event time: with a step (`[streams] gold_step`, `--step 1h`) a batch's
sums are also keyed by the step of event time their reading falls in, and each
table takes one commit per step, in order, the partitions it touches read once
per batch (the writer's steps): a catch-up of a month leaves a version per hour for
`query --at`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from gold.answers import ANSWERS, Answer, in_steps, period_sums, priced_by_plans
from meterlake.core.commits import STEP_SLOTS, BatchWriter
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.steps import step_micros
from meterlake.core.streams import Run, start_stream
from meterlake.core.tables import ensure_table, read_appends
from meterlake.core.tariff import load_tariff

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery


def add_increments(writer: BatchWriter, path: str, answer: Answer, steps: list[pa.Table],
                   app_id: str, batch_id: int) -> bool:
    """Add an answer's increments (one table per step of the batch) to its table at
    path: the partitions they touch, rewritten once per step; skipped when app_id's
    batch_id is there already. True when it wrote."""
    return writer.replace_partitions(
        path, app_id, batch_id, steps, answer.rewritten_by, answer.arrow_schema,
        lambda current, added: answer.add(current, added, datetime.now(UTC)),
    )


class GoldWriter:
    """foreachBatch of the gold query: a batch of pieces -> the gold tables, each
    batch once per table. The tables stay open between batches.

    With `[streams] gold_step` the batch is committed step by step of event time,
    in order: one version of each table per step (meterlake.core.commits: a batch
    run again after a crash skips the steps already committed)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.writer = BatchWriter(config.checkpoint("gold"))
        self.tariff = load_tariff(config.semantics.tariff, config.semantics.zone)
        self.step_us = step_micros(config.streams.gold_step)

    def __call__(self, pieces: DataFrame, batch_id: int) -> None:
        query_id = self.writer.query.get(pieces.sparkSession)
        sums = period_sums(pieces, self.step_us, self.config.semantics.zone).toArrow()
        if sums.num_rows == 0:
            return
        steps = in_steps(sums)
        if len(steps) > STEP_SLOTS:
            raise MeterlakeError(f"a gold batch of {len(steps):,} steps: use a longer --step")
        priced = in_steps(priced_by_plans(sums, self.tariff))  # priced once, cut alike
        with ThreadPoolExecutor(len(ANSWERS)) as pool:  # delta-rs commits outside the GIL
            done = [pool.submit(self.write, answer, priced if answer.by_plan else steps,
                                f"{answer.table}-{query_id}", batch_id)
                    for answer in ANSWERS.values()]
            for future in done:
                future.result()

    def write(self, answer: Answer, steps: list[pa.Table], app_id: str, batch_id: int) -> None:
        """One answer's table: a batch's period sums, step by step."""
        add_increments(self.writer, str(self.config.table_path(answer.table)), answer,
                       [answer.increments(rows) for rows in steps], app_id, batch_id)


def ensure_gold_tables(spark: SparkSession, config: Config) -> None:
    for answer in ANSWERS.values():
        path = config.table_path(answer.table)
        ensure_table(spark, path, answer.schema, answer.comment, (answer.partition,))


def start_gold(spark: SparkSession, config: Config, run: Run) -> StreamingQuery:
    ensure_gold_tables(spark, config)
    pieces = read_appends(spark, config.table_path("silver"))
    return start_stream(pieces, "gold", config, GoldWriter(config), run)
