"""The views beyond the four answers, as SQL over the registered tables: `plans` (each
meter's month so far under every tariff plan, gold's month_plan_cost) and `health`
(each meter's readings today, from silver's readings and quarantine).

Each view is created only when its tables are registered; it reads only them and the
small tables of the conf it needs (the contracts; the health settings). Kept apart
from meterlake.read.lake, which calls `create_more_views` after the views q1..q4.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa

from meterlake.core.config import Config
from meterlake.core.tariff import load_tariff

MORE_VIEW_TABLES = {"plans": ("month_plan_cost",), "health": ("readings", "quarantine")}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def contract_tables(config: Config) -> dict[str, pa.Table]:
    """The conf's contracts as two small tables: `contract_default` (plan) and
    `contract_overrides` (sensor_id, plan)."""
    path = Path(config.semantics.tariff)
    return _contract_tables(str(path), config.semantics.zone, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _contract_tables(path: str, zone: str, mtime_ns: int) -> dict[str, pa.Table]:
    """contract_tables, read again only when the file changes."""
    tariff = load_tariff(Path(path), zone)
    return {
        "contract_default": pa.table({"plan": [tariff.default_name]}),
        "contract_overrides": pa.table(
            {"sensor_id": list(tariff.meters), "plan": list(tariff.meters.values())},
            schema=pa.schema([("sensor_id", pa.string()), ("plan", pa.string())]),
        ),
    }


def plans_view_sql(zone: str) -> str:
    """Each meter of the current month (by month_plan_cost's latest as_of) under every
    plan: cost, whether it is the meter's contract, and the saving against the contract
    (positive: that plan would have cost less). Cheapest first within each meter."""
    return f"""
WITH clock AS (
    SELECT CAST(date_trunc('month', timezone({_literal(zone)}, max(as_of))) AS DATE) AS month
    FROM month_plan_cost
),
this_month AS (
    SELECT p.* FROM month_plan_cost AS p, clock WHERE p.month = clock.month
),
contract AS (
    SELECT s.sensor_id, coalesce(o.plan, d.plan) AS plan
    FROM (SELECT DISTINCT sensor_id FROM this_month) AS s
    CROSS JOIN contract_default AS d
    LEFT JOIN contract_overrides AS o ON o.sensor_id = s.sensor_id
)
SELECT p.sensor_id, p.plan, p.cost_eur, p.plan = c.plan AS contracted,
       mine.cost_eur - p.cost_eur AS saving_eur
FROM this_month AS p
JOIN contract AS c ON c.sensor_id = p.sensor_id
LEFT JOIN this_month AS mine ON mine.sensor_id = p.sensor_id AND mine.plan = c.plan
ORDER BY p.sensor_id, round(p.cost_eur, 9), p.plan
"""


def create_more_views(
    con: duckdb.DuckDBPyConnection, config: Config, tables: Iterable[str]
) -> list[str]:
    """The views whose tables are all registered, with the conf tables they need."""
    present, created = set(tables), []
    if set(MORE_VIEW_TABLES["plans"]) <= present:
        for name, table in contract_tables(config).items():
            con.register(name, table)
        con.execute(f"CREATE OR REPLACE TEMP VIEW plans AS {plans_view_sql(config.semantics.zone)}")
        created.append("plans")
    return created
