"""The views' SQL: the four answers q1..q4 (and q3_long, q3 in long form) as DuckDB
views over their gold tables, and the split of today's cost by tariff band.

The views follow docs/semantics.md, "The clock and the views". "Now" is the latest
`as_of` of the view's own table (so a view of a time-travelled table is
self-consistent), the current day and month are its local date in the configured
zone. Each view reads only its own gold table (`VIEW_TABLES`), so `--version` /
`--as-of` apply to it. q3 and q3_long are laid out by meterlake.read.halfhours.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import duckdb

from meterlake.core import catalog
from meterlake.read import halfhours
from meterlake.read.sqltext import clock_sql

log = logging.getLogger(__name__)

ANSWERS: tuple[str, ...] = tuple(catalog.VIEW_TABLES)  # the four answers, q1..q4
# Each view reads only its own gold table (VIEW_TABLES), so `--version` / `--as-of`
# apply to it. q3_long is q3 in long form, for scripts.
VIEW_TABLES: dict[str, str] = {**catalog.VIEW_TABLES, "q3_long": catalog.VIEW_TABLES["q3"]}
VIEW_TITLES = {
    "q1": "kWh per sensor this month",
    "q2": "kWh per sensor today",
    "q3": "kWh per sensor and half hour today",
    "q4": "cost per sensor today",
    "q3_long": "kWh per half hour and sensor today",
}
HALF_HOUR_VIEWS = ("q3", "q3_long")  # laid out from one HalfHours, not by a SQL view
COST_NOTE = "energy term only, no VAT or fixed charges"


def month_view_sql(zone: str) -> str:
    """q1: kWh per sensor for the current month."""
    return f"""
WITH clock AS ({clock_sql("month_energy", zone)})
SELECT sensor_id, energy_kwh FROM (
    SELECT m.sensor_id, m.energy_kwh
    FROM month_energy AS m, clock
    WHERE m.month = CAST(date_trunc('month', clock.today) AS DATE)
)
ORDER BY round(energy_kwh, 9) DESC, sensor_id DESC
"""


def day_view_sql(table: str, value: str, zone: str) -> str:
    """q2/q4: today's value per sensor with a row this month; 0 when nothing today."""
    return f"""
WITH clock AS ({clock_sql(table, zone)}),
month_sensors AS (
    SELECT DISTINCT t.sensor_id
    FROM {table} AS t, clock
    WHERE t.day BETWEEN CAST(date_trunc('month', clock.today) AS DATE) AND clock.today
),
this_day AS (
    SELECT t.sensor_id, t.{value} FROM {table} AS t, clock WHERE t.day = clock.today
)
SELECT sensor_id, {value} FROM (
    SELECT s.sensor_id, coalesce(d.{value}, 0.0) AS {value}
    FROM month_sensors AS s LEFT JOIN this_day AS d USING (sensor_id)
)
ORDER BY round({value}, 9) DESC, sensor_id DESC
"""


def cost_by_band_sql(zone: str) -> str:
    """Today's cost per sensor and tariff band, from the silver pieces of q4's day.

    Gold's day_cost holds one total per sensor and day; the band split is the
    sum of the current day's silver pieces (with their retractions, so a plain
    sum) per band, the current day being q4's: the local date of day_cost's
    latest as_of. Columns: sensor_id, band, price (EUR per kWh), cost_eur.
    """
    return f"""
WITH clock AS ({clock_sql("day_cost", zone)})
SELECT p.sensor_id, p.band, max(p.price) AS price, sum(p.cost_eur) AS cost_eur
FROM silver AS p, clock
WHERE p.day = clock.today
GROUP BY ALL
ORDER BY p.sensor_id, price DESC, p.band
"""


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def create_views(
    con: duckdb.DuckDBPyConnection,
    zone: str,
    tables: Iterable[str],
    wide_q3_max_sensors: int | None = None,
) -> list[str]:
    """The views q1..q4 and q3_long over those of their tables that are registered.

    The wide q3 is a SQL view only when `wide_q3_max_sensors` is given (for `sql`
    and `connect`): with up to that many sensors this month, a column each; with
    more, a view whose every query is an error naming q3_long. `query q3` lays q3
    out from its long form instead (`meterlake.read.halfhours`).
    """
    needs = {
        "q1": {"sensor_id", "month", "energy_kwh", "as_of"},
        "q2": {"sensor_id", "day", "energy_kwh", "as_of"},
        "q3_long": {"sensor_id", "day", "period_start", "energy_kwh", "as_of"},
        "q4": {"sensor_id", "day", "cost_eur", "as_of"},
    }
    present = set(tables)
    created = []
    for view, columns in needs.items():
        table = VIEW_TABLES[view]
        if table not in present:
            continue
        missing = columns - _columns(con, table)
        if missing:
            log.warning("no view %s: %s lacks %s", view, table, ", ".join(sorted(missing)))
            continue
        if view == "q1":
            body = month_view_sql(zone)
        elif view == "q3_long":
            body = halfhours.long_view_sql(zone)
        else:
            body = day_view_sql(table, "cost_eur" if view == "q4" else "energy_kwh", zone)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
        created.append(view)
    if "q3_long" in created and wide_q3_max_sensors is not None:
        sensors = halfhours.month_sensors(con, zone)
        if len(sensors) <= wide_q3_max_sensors:
            body = halfhours.wide_view_sql(sensors)
        else:
            body = halfhours.too_wide_view_sql(len(sensors), wide_q3_max_sensors)
        con.execute(f"CREATE OR REPLACE TEMP VIEW q3 AS {body}")
        created.append("q3")
    return created
