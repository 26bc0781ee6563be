"""The views beyond the four answers, as SQL over the registered tables: `plans` (each
meter's month so far under every tariff plan, gold's month_plan_cost) and `health`
(each meter's readings today, from silver's readings and quarantine, at query time).

Each view is created only when its tables are registered; it reads only them and the
small tables of the conf it needs (the contracts; the health settings). Kept apart
from the four answers' views (meterlake.read.views); meterlake.read.connection calls
`create_more_views` after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa

from meterlake.core.bill import load_bill_terms
from meterlake.core.config import Config
from meterlake.core.tariff import load_tariff

MORE_VIEW_TABLES = {
    "plans": ("month_plan_cost",),
    "bill": ("month_plan_cost", "month_energy"),
    "health": ("readings", "quarantine"),
}


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


def bill_tables(config: Config) -> dict[str, pa.Table]:
    """The conf's bill terms: `bill_terms` (one row) and `bill_power` (sensor_id, kva)."""
    terms = load_bill_terms(Path(config.semantics.tariff))
    return {
        "bill_terms": pa.table({
            "default_kva": [terms.power_kva], "vat_reduced": [terms.vat_reduced],
            "vat_standard": [terms.vat_standard],
            "reduced_kwh_per_30_days": [terms.vat_reduced_kwh_per_30_days],
            "reduced_max_kva": [terms.vat_reduced_max_kva],
            "power_reduced_max_kva": [terms.vat_power_reduced_max_kva],
        }),
        "bill_charges": pa.table({"kva": [k for k, _ in terms.power_eur_per_day],
                                  "eur_per_day": [e for _, e in terms.power_eur_per_day]}),
        "bill_power": pa.table(
            {"sensor_id": [s for s, _ in terms.meters], "kva": [k for _, k in terms.meters]},
            schema=pa.schema([("sensor_id", pa.string()), ("kva", pa.float64())]),
        ),
    }  # fmt: skip


def bill_view_sql(zone: str) -> str:
    """The bill of the current month so far, per meter of `plans`: energy term (the
    contracted plan's cost), power term (days of the month so far, today included, x
    the daily charge of the meter's kVA), VAT (energy: the reduced rate on the first
    reduced_kwh_per_30_days x days / 30 kWh when kVA <= reduced_max_kva, at the
    meter's average price so far, the standard rate on the rest; power: reduced when
    kVA <= power_reduced_max_kva) and the total."""
    return f"""
WITH clock AS (
    SELECT CAST(timezone({_literal(zone)}, max(as_of)) AS DATE) AS today FROM month_plan_cost
),
meter AS (
    SELECT p.sensor_id, p.cost_eur AS energy_eur, e.energy_kwh,
           coalesce(b.kva, t.default_kva) AS power_kva, day(clock.today) AS days, t.*
    FROM plans AS p
    CROSS JOIN clock CROSS JOIN bill_terms AS t
    JOIN month_energy AS e
      ON e.sensor_id = p.sensor_id
     AND e.month = CAST(date_trunc('month', clock.today) AS DATE)
    LEFT JOIN bill_power AS b ON b.sensor_id = p.sensor_id
    WHERE p.contracted
),
terms AS (
    SELECT m.*, c.eur_per_day * m.days AS power_eur,
           CASE WHEN m.power_kva <= m.reduced_max_kva
                THEN least(greatest(m.energy_kwh, 0), m.reduced_kwh_per_30_days * m.days / 30)
                ELSE 0 END AS reduced_kwh
    FROM meter AS m JOIN bill_charges AS c ON c.kva = m.power_kva
),
taxed AS (
    SELECT *,
           CASE WHEN energy_kwh > 0
                THEN energy_eur * (reduced_kwh * vat_reduced
                                   + (energy_kwh - reduced_kwh) * vat_standard) / energy_kwh
                ELSE energy_eur * vat_standard END
           + power_eur * CASE WHEN power_kva <= power_reduced_max_kva
                              THEN vat_reduced ELSE vat_standard END AS vat_eur
    FROM terms
)
SELECT sensor_id, days, energy_kwh, power_kva, reduced_kwh AS vat_reduced_kwh, energy_eur,
       power_eur, vat_eur, energy_eur + power_eur + vat_eur AS total_eur
FROM taxed ORDER BY sensor_id
"""


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


def health_view_sql(zone: str, silent_cadences: float) -> str:
    """Per meter with accepted readings: its latest reading (`last_reading`), its usual
    interval (`cadence_s`, the median between consecutive readings), today's readings
    (local date of "now", the latest accepted reading of any meter), the longest stretch
    of today without a reading (`longest_gap_today_s`: from local midnight to the first,
    between readings, from the last to now), the quarantine rows of its readings today
    by reason (rows whose event time is today), and `silent`: no reading for more than
    `silent_cadences` x cadence_s before now (now being another meter's reading, the
    others have reported since). Silent meters first, then by sensor."""
    z = _literal(zone)
    return f"""
WITH clock AS (
    SELECT max(event_time) AS now, CAST(timezone({z}, max(event_time)) AS DATE) AS today
    FROM readings
),
day_start AS (
    SELECT now, today, timezone({z}, CAST(today AS TIMESTAMP)) AS midnight FROM clock
),
meters AS (
    SELECT sensor_id, max(event_time) AS last_reading, median(gap_s) AS cadence_s
    FROM (SELECT sensor_id, event_time, epoch(event_time) - epoch(lag(event_time)
                 OVER (PARTITION BY sensor_id ORDER BY event_time)) AS gap_s
          FROM readings)
    GROUP BY sensor_id
),
today_readings AS (
    SELECT r.sensor_id, r.event_time FROM readings AS r, day_start AS d WHERE r.day = d.today
),
today_points AS (
    SELECT sensor_id, event_time AS t FROM today_readings
    UNION ALL SELECT m.sensor_id, d.midnight FROM meters AS m, day_start AS d
    UNION ALL SELECT m.sensor_id, d.now FROM meters AS m, day_start AS d
),
today_gaps AS (
    SELECT sensor_id, max(gap_s) AS longest_gap_today_s
    FROM (SELECT sensor_id, epoch(t) - epoch(lag(t) OVER (PARTITION BY sensor_id ORDER BY t))
                 AS gap_s
          FROM today_points)
    GROUP BY sensor_id
),
by_reason AS (
    SELECT q.sensor_id, q.reason, count(*) AS n
    FROM quarantine AS q, day_start AS d
    WHERE q.sensor_id IS NOT NULL AND CAST(timezone({z}, q.event_time) AS DATE) = d.today
    GROUP BY q.sensor_id, q.reason
),
quarantined AS (
    SELECT sensor_id, sum(n) AS quarantined_today,
           string_agg(reason || ' ' || n, ', ' ORDER BY reason) AS quarantined_by_reason
    FROM by_reason GROUP BY sensor_id
)
SELECT m.sensor_id, m.last_reading, m.cadence_s,
       (SELECT count(*) FROM today_readings AS t WHERE t.sensor_id = m.sensor_id)
           AS readings_today,
       g.longest_gap_today_s,
       coalesce(q.quarantined_today, 0) AS quarantined_today,
       coalesce(q.quarantined_by_reason, '') AS quarantined_by_reason,
       coalesce(epoch(d.now) - epoch(m.last_reading) > {float(silent_cadences)} * m.cadence_s,
                false) AS silent
FROM meters AS m
CROSS JOIN day_start AS d
JOIN today_gaps AS g ON g.sensor_id = m.sensor_id
LEFT JOIN quarantined AS q ON q.sensor_id = m.sensor_id
ORDER BY silent DESC, m.sensor_id
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
        if set(MORE_VIEW_TABLES["bill"]) <= present:
            for name, table in bill_tables(config).items():
                con.register(name, table)
            body = bill_view_sql(config.semantics.zone)
            con.execute(f"CREATE OR REPLACE TEMP VIEW bill AS {body}")
            created.append("bill")
    if set(MORE_VIEW_TABLES["health"]) <= present:
        body = health_view_sql(config.semantics.zone, config.health.silent_cadences)
        con.execute(f"CREATE OR REPLACE TEMP VIEW health AS {body}")
        created.append("health")
    return created
