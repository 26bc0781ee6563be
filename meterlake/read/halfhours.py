"""q3, the half hours of the current day, without a column per meter in SQL.

q3 has one row per half-hour period of the current day that starts before
"now" and one column per sensor of the current month (a row of
`halfhour_energy` in the month up to today), empty where the sensor has no
data for the period. A fleet has 100,000 sensors: a SQL result that wide costs
DuckDB a vector per column (the old view, one `FILTER` aggregate per sensor,
grew to 23.8 GB for 4,587 sensors). So:

- `q3_long` is a plain view, the same cells in long form
  (`period_start, sensor_id, energy_kwh`, one row per period and sensor, NULL
  where no data), which DuckDB streams;
- `query q3` (and the API, the page, the report) reads the day's rows in long
  form with each one's period and sensor numbered, and lays them out in a
  numpy matrix (`HalfHours`): 8 bytes a cell, 38 MB for 100,000 sensors and 48
  periods. Its rows are made on demand (`WideRows`, `LongRows`), a row at a time;
- `sql` still has a wide `q3` view for lakes of up to `[read]
  sql_q3_max_sensors` sensors; beyond that `q3` says to use `q3_long`.

"Now" is the latest `as_of` of halfhour_energy, the current day and month its
local date and month (docs/semantics.md, "The clock and the views").
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, overload

import duckdb
import numpy as np

from meterlake.read.sqltext import clock_sql, quote_identifier, sql_string

CELLS_PER_BATCH = 262_144  # cells of the day fetched from DuckDB at a time


def ctes_sql(zone: str) -> str:
    """The CTEs of q3: `clock`, `periods` (of the current day, before now), `month_sensors`
    (a row this month up to today) and `day_rows` (the current day's rows)."""
    z = sql_string(zone)
    return f"""
WITH clock AS ({clock_sql("halfhour_energy", zone)}),
bounds AS (
    SELECT now,
           timezone('UTC', timezone({z}, CAST(today AS TIMESTAMP))) AS first_utc,
           timezone('UTC', timezone({z}, CAST(today + 1 AS TIMESTAMP))) AS end_utc
    FROM clock
),
periods AS (
    SELECT period_start FROM (
        SELECT timezone('UTC', slot) AS period_start, now
        FROM (SELECT unnest(range(first_utc, end_utc, INTERVAL 30 MINUTE)) AS slot, now
              FROM bounds)
    ) WHERE period_start < now
),
month_sensors AS (
    SELECT DISTINCT h.sensor_id
    FROM halfhour_energy AS h, clock
    WHERE h.day BETWEEN CAST(date_trunc('month', clock.today) AS DATE) AND clock.today
      AND h.sensor_id IS NOT NULL
),
day_rows AS (
    SELECT h.sensor_id, h.period_start, h.energy_kwh
    FROM halfhour_energy AS h, clock
    WHERE h.day = clock.today AND h.sensor_id IS NOT NULL
)"""


def long_view_sql(zone: str) -> str:
    """q3_long: a row per period of the current day before now and per sensor of the
    current month, `energy_kwh` NULL where the sensor has no data for the period."""
    return f"""{ctes_sql(zone)}
SELECT p.period_start, s.sensor_id, d.energy_kwh
FROM periods AS p CROSS JOIN month_sensors AS s
LEFT JOIN day_rows AS d ON d.period_start = p.period_start AND d.sensor_id = s.sensor_id
ORDER BY p.period_start, s.sensor_id
"""


def wide_view_sql(sensors: Sequence[str]) -> str:
    """q3 for `sql`, laid out wide over q3_long: column k holds the sensor ranked k, the
    ranking `sensors` was read in (no sensor id is pasted into the SQL as a value)."""
    columns = "".join(
        f",\n    first(energy_kwh) FILTER (WHERE sensor_rank = {rank}) AS {quote_identifier(s)}"
        for rank, s in enumerate(sensors, start=1)
    )
    return f"""
SELECT period_start{columns}
FROM (SELECT *, dense_rank() OVER (ORDER BY sensor_id) AS sensor_rank FROM q3_long)
GROUP BY period_start
ORDER BY period_start
"""


def too_wide_view_sql(count: int, limit: int) -> str:
    """q3 for `sql` when the month has more sensors than a SQL result should have columns."""
    message = (
        f"q3 would have {count:,} sensor columns, more than [read] sql_q3_max_sensors = "
        f"{limit:,}: select from q3_long (period_start, sensor_id, energy_kwh), "
        "or run `meterlake query q3`"
    )
    return f"SELECT NULL AS period_start WHERE error({sql_string(message)}) IS NULL"


def month_sensors(con: duckdb.DuckDBPyConnection, zone: str) -> list[str]:
    """The sensors of the current month, in id order (q3's columns)."""
    query = ctes_sql(zone) + "\nSELECT sensor_id FROM month_sensors ORDER BY sensor_id"
    return [sensor for (sensor,) in con.execute(query).fetchall()]


@dataclass(frozen=True)
class HalfHours:
    """q3 as a matrix: `values[i, k]` is the kWh of sensor k in period i where
    `present[i, k]`, else empty."""

    periods: list[datetime]
    sensors: list[str]
    values: np.ndarray  # float64, periods x sensors
    present: np.ndarray  # bool, periods x sensors

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, zone: str, tz: tzinfo) -> HalfHours:
        """q3 of the halfhour_energy registered in `con`; periods in `tz`."""
        ctes = ctes_sql(zone)
        periods = [
            start.astimezone(tz) for (start,) in
            con.execute(ctes + "\nSELECT period_start FROM periods ORDER BY period_start")
            .fetchall()
        ]
        sensors = month_sensors(con, zone)
        reader = con.execute(ctes + """,
numbered_periods AS (SELECT period_start,
                            CAST(row_number() OVER (ORDER BY period_start) - 1 AS INTEGER) AS i
                     FROM periods),
numbered_sensors AS (SELECT sensor_id,
                            CAST(row_number() OVER (ORDER BY sensor_id) - 1 AS INTEGER) AS k
                     FROM month_sensors)
SELECT p.i, s.k, d.energy_kwh
FROM day_rows AS d
JOIN numbered_periods AS p USING (period_start)
JOIN numbered_sensors AS s USING (sensor_id)
WHERE d.energy_kwh IS NOT NULL
""").to_arrow_reader(CELLS_PER_BATCH)
        values = np.zeros((len(periods), len(sensors)))
        present = np.zeros(values.shape, dtype=bool)
        for batch in reader:  # a batch at a time: the cells are never all in Arrow at once
            at = (batch.column("i").to_numpy(), batch.column("k").to_numpy())
            values[at] = batch.column("energy_kwh").to_numpy()
            present[at] = True
        return cls(periods, sensors, values, present)

    def only(self, chosen: Sequence[str]) -> HalfHours:
        """The columns of the `chosen` sensors that it has, in id order."""
        wanted = set(chosen)
        keep = [k for k, sensor in enumerate(self.sensors) if sensor in wanted]
        return HalfHours(self.periods, [self.sensors[k] for k in keep],
                         self.values[:, keep], self.present[:, keep])

    def largest(self, count: int) -> list[str]:
        """The `count` sensors with the most kWh over the day's periods (ties: the sensor
        id descending, as the sorted views break them), in id order."""
        totals = np.round(np.where(self.present, self.values, 0.0).sum(axis=0), 9)
        # sensors are in id order: by total descending, then position descending
        order = np.lexsort((-np.arange(len(self.sensors)), -totals))[:count]
        return [self.sensors[k] for k in sorted(order.tolist())]

    def row(self, i: int) -> list[float | None]:
        values, present = self.values[i].tolist(), self.present[i].tolist()
        return [v if p else None for v, p in zip(values, present, strict=True)]

    def wide_rows(self) -> WideRows:
        return WideRows(self)

    def long_rows(self) -> LongRows:
        return LongRows(self)


class _Rows(Sequence[tuple[Any, ...]]):
    """Rows made on demand from a `HalfHours`; equal to any sequence of the same rows."""

    def __init__(self, cells: HalfHours) -> None:
        self.cells = cells

    def _row(self, index: int) -> tuple[Any, ...]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Any, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Any, ...] | list[tuple[Any, ...]]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._row(index)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class WideRows(_Rows):
    """q3's rows: (period_start, kWh or None per sensor)."""

    def __len__(self) -> int:
        return len(self.cells.periods)

    def _row(self, index: int) -> tuple[Any, ...]:
        return (self.cells.periods[index], *self.cells.row(index))

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for i in range(len(self)):
            yield self._row(i)


class LongRows(_Rows):
    """q3_long's rows: (period_start, sensor_id, kWh or None), by period then sensor."""

    def __len__(self) -> int:
        return len(self.cells.periods) * len(self.cells.sensors)

    def _row(self, index: int) -> tuple[Any, ...]:
        i, k = divmod(index, len(self.cells.sensors))
        present = bool(self.cells.present[i, k])
        value = float(self.cells.values[i, k]) if present else None
        return (self.cells.periods[i], self.cells.sensors[k], value)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        sensors = self.cells.sensors
        for i, period in enumerate(self.cells.periods):
            for sensor, value in zip(sensors, self.cells.row(i), strict=True):
                yield (period, sensor, value)
