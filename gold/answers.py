"""The four answers as pure transforms: silver pieces -> per-key increments.

Each gold table is a sum of silver pieces over its key. A micro-batch of
pieces (retractions included, with negative kWh) becomes one increment per
key, which the job adds to the table with MERGE.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


@dataclass(frozen=True)
class Answer:
    table: str
    keys: tuple[str, ...]
    value: str  # the summed column in the gold table
    piece_value: str  # the piece column it sums
    comment: str

    @property
    def schema(self) -> StructType:
        types = {
            "sensor_id": StringType(),
            "month": DateType(),
            "day": DateType(),
            "period_start": TimestampType(),
        }
        return StructType(
            [StructField(k, types[k]) for k in self.keys]
            + [
                StructField(self.value, DoubleType()),
                StructField("as_of", TimestampType()),
                StructField("updated_at", TimestampType()),
            ]
        )

    def increments(self, pieces: DataFrame) -> DataFrame:
        """Sum the batch's pieces per key; as_of = latest reading they include."""
        return pieces.groupBy(*self.keys).agg(
            F.sum(self.piece_value).alias(self.value),
            F.max("interval_end").alias("as_of"),
        )


ANSWERS: dict[str, Answer] = {
    a.table: a
    for a in (
        Answer(
            "month_energy",
            ("sensor_id", "month"),
            "energy_kwh",
            "kwh",
            "Q1: kWh per sensor and month",
        ),
        Answer(
            "day_energy", ("sensor_id", "day"), "energy_kwh", "kwh", "Q2: kWh per sensor and day"
        ),
        Answer(
            "halfhour_energy",
            ("sensor_id", "day", "period_start"),
            "energy_kwh",
            "kwh",
            "Q3: kWh per sensor and half-hour period",
        ),
        Answer(
            "day_cost",
            ("sensor_id", "day"),
            "cost_eur",
            "cost_eur",
            "Q4: energy cost (EUR, energy term only) per sensor and day",
        ),
    )
}
