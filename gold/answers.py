"""The four answers as pure transforms: silver pieces -> per-key increments.

Each gold table is a sum of silver pieces over its key. A micro-batch of pieces
(retractions included, with negative kWh) is first summed once, in Spark, per
sensor and half-hour period (`period_sums`, the finest key of the four answers);
each answer's increments are then sums of those few rows over its own key, in
Arrow, and `Answer.add` computes the new rows of the partitions (days, or months
for Q1; for Q3 the half hours of a day) they touch, which the job writes over the
old ones (gold.job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from meterlake.core.steps import step_end_sql
from meterlake.core.tariff import Tariff

# The gold key columns, in Spark and as Delta stores them (timestamps in UTC).
KEY_TYPES: dict[str, tuple[DataType, pa.DataType]] = {
    "sensor_id": (StringType(), pa.string()),
    "month": (DateType(), pa.date32()),
    "day": (DateType(), pa.date32()),
    "period_start": (TimestampType(), pa.timestamp("us", tz="UTC")),
    "plan": (StringType(), pa.string()),
}
UTC_MICROS = pa.timestamp("us", tz="UTC")
PERIOD_KEYS = ("sensor_id", "month", "day", "period_start")
STEP_END = "step_end"  # period_sums in steps: local wall-clock micros the step ends at


@dataclass(frozen=True)
class Answer:
    table: str
    keys: tuple[str, ...]
    value: str  # the summed column in the gold table
    piece_value: str  # the piece column it sums
    comment: str
    partition: str  # the date key the table is partitioned by: a batch rewrites only these
    by_plan: bool = False  # summed from period_sums priced under every plan (priced_by_plans)
    # Finer keys within a partition: a batch rewrites only the rows of the values it
    # touches (a live batch touches a half hour or two of a day's 48).
    within: tuple[str, ...] = ()

    @property
    def rewritten_by(self) -> tuple[str, ...]:
        """The keys whose touched values a batch rewrites: the partition, then finer."""
        return (self.partition, *self.within)

    @property
    def schema(self) -> StructType:
        return StructType(
            [StructField(k, KEY_TYPES[k][0]) for k in self.keys]
            + [
                StructField(self.value, DoubleType()),
                StructField("as_of", TimestampType()),
                StructField("updated_at", TimestampType()),
            ]
        )

    @property
    def arrow_schema(self) -> pa.Schema:
        """The rows as the table stores them."""
        return pa.schema(
            [(k, KEY_TYPES[k][1]) for k in self.keys]
            + [(self.value, pa.float64()), ("as_of", UTC_MICROS), ("updated_at", UTC_MICROS)]
        )

    def increments(self, sums: pa.Table) -> pa.Table:
        """period_sums rows -> one row per key of this answer: the sum of its value and
        as_of = the latest reading included."""
        grouped = sums.group_by(list(self.keys), use_threads=False).aggregate(
            [(self.piece_value, "sum"), ("as_of", "max")]
        )
        names = {f"{self.piece_value}_sum": self.value, "as_of_max": "as_of"}
        grouped = grouped.rename_columns([names.get(c, c) for c in grouped.column_names])
        schema = self.arrow_schema.remove(self.arrow_schema.get_field_index("updated_at"))
        return grouped.select(schema.names).cast(schema)

    def add(self, current: pa.Table, increments: pa.Table, now: datetime) -> pa.Table:
        """The rows of the partitions increments touch, before -> after: a key's value
        grows by its increment, its as_of moves to the later one and its updated_at to
        now; keys without an increment are kept as they were, new keys are added."""
        keys = list(self.keys)
        kept = current.join(increments.select(keys), keys, join_type="left anti")
        old = current.select([*keys, self.value, "as_of"]).rename_columns(
            [*keys, "old_value", "old_as_of"]
        )
        touched = increments.join(old, keys, join_type="left outer")
        value = pc.add(touched[self.value], pc.fill_null(touched["old_value"], 0.0))
        later = pc.fill_null(pc.greater(touched["old_as_of"], touched["as_of"]), False)
        as_of = pc.if_else(later, touched["old_as_of"], touched["as_of"])
        stamp = pa.array([now] * touched.num_rows, UTC_MICROS)
        added = pa.table(
            [*(touched[k] for k in keys), value, as_of, stamp], schema=self.arrow_schema
        )
        return pa.concat_tables([kept.select(self.arrow_schema.names).cast(self.arrow_schema),
                                 added])


def priced_by_plans(sums: pa.Table, tariff: Tariff) -> pa.Table:
    """period_sums rows -> the same rows once per tariff plan, with `plan` and
    `plan_cost_eur` = kWh x that plan's price of the period (each distinct period and
    plan looked up once): what each meter's half hours would cost under every plan."""
    count, rows = len(tariff.plans), sums.num_rows
    periods = sums["period_start"].cast(pa.int64()).to_numpy()
    plan = np.repeat(np.arange(count, dtype=np.int64), rows)
    _, price = tariff.prices(np.tile(periods, count), plan)
    kwh = np.tile(sums["kwh"].to_numpy(), count)
    repeated = pa.concat_tables([sums] * count)
    names = pa.array(np.array(tariff.names, dtype=object)[plan], pa.string())
    return repeated.append_column("plan", names).append_column(
        "plan_cost_eur", pa.array(kwh * price, pa.float64())
    )


def period_sums(pieces: DataFrame, step_us: int | None = None, zone: str = "UTC") -> DataFrame:
    """A batch of pieces -> kWh, cost and latest interval end per sensor and period:
    every answer's key is a part of this one. With a step of event time, also per
    `step_end` (meterlake.core.steps): the step the piece's reading falls in."""
    keys = [F.col(k) for k in PERIOD_KEYS]
    if step_us is not None:
        keys.append(F.expr(step_end_sql("interval_end", zone, step_us)).alias(STEP_END))
    return pieces.groupBy(*keys).agg(
        F.sum("kwh").alias("kwh"),
        F.sum("cost_eur").alias("cost_eur"),
        F.max("interval_end").alias("as_of"),
    )


def in_steps(sums: pa.Table) -> list[pa.Table]:
    """period_sums rows -> one table per step of event time, in order; all in one
    when they carry no step."""
    if STEP_END not in sums.column_names:
        return [sums]
    ends = pc.unique(sums[STEP_END]).sort()
    return [sums.filter(pc.equal(sums[STEP_END], end)) for end in ends]


ANSWERS: dict[str, Answer] = {
    a.table: a
    for a in (
        Answer(
            "month_energy",
            ("sensor_id", "month"),
            "energy_kwh",
            "kwh",
            "Q1: kWh per sensor and month",
            "month",
        ),
        Answer(
            "day_energy",
            ("sensor_id", "day"),
            "energy_kwh",
            "kwh",
            "Q2: kWh per sensor and day",
            "day",
        ),
        Answer(
            "halfhour_energy",
            ("sensor_id", "day", "period_start"),
            "energy_kwh",
            "kwh",
            "Q3: kWh per sensor and half-hour period",
            "day",
            within=("period_start",),
        ),
        Answer(
            "day_cost",
            ("sensor_id", "day"),
            "cost_eur",
            "cost_eur",
            "Q4: energy cost (EUR, energy term only) per sensor and day",
            "day",
        ),
        Answer(
            "month_plan_cost",
            ("sensor_id", "month", "plan"),
            "cost_eur",
            "plan_cost_eur",
            "Plans compared: energy cost (EUR, energy term only) per sensor and month under"
            " every tariff plan",
            "month",
            by_plan=True,
        ),
    )
}
