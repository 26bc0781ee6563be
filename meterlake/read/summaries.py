"""Per-meter summaries of the answers beyond the four, shaped once for the page
(meterlake.app.panels) and the report (meterlake.read.report_more):

- `plan_savings`: from `query plans`' rows, each meter's contract and its cost, the
  cheapest plan and its cost, and the saving (the contract's cost minus the cheapest's,
  the cheapest row's `saving_eur`); the largest saving first;
- `bill_ahead`: `query bill`'s rows beside `query projection`'s (kWh and energy cost to
  the end of the month), the largest bill first.

Nothing here computes a cost: the numbers are the views', only regrouped.
"""

from __future__ import annotations

from collections.abc import Sequence

from meterlake.read.result import Result

SAVING_COLUMNS = ["sensor_id", "contract", "contract_eur", "cheapest", "cheapest_eur",
                  "saving_eur"]  # fmt: skip
AHEAD_COLUMNS = ["kwh_projected", "cost_projected_eur"]  # from the projection
EQUAL = 9  # decimals: values closer than 1e-9 sort as equal (semantics §6)


def _by_name(result: Result) -> list[dict[str, object]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def plan_savings(plans: Result) -> Result:
    """One row per meter (SAVING_COLUMNS) from the rows of view `plans` (cheapest first
    within each meter): the largest saving first, then by sensor id."""
    meters: dict[str, dict[str, object]] = {}
    for row in _by_name(plans):
        meter = meters.setdefault(str(row["sensor_id"]), {
            "cheapest": row["plan"], "cheapest_eur": row["cost_eur"],
            "saving_eur": row["saving_eur"]})  # fmt: skip
        if row["contracted"]:
            meter["contract"], meter["contract_eur"] = row["plan"], row["cost_eur"]
    rows = [
        (sensor, m.get("contract"), m.get("contract_eur"), m["cheapest"], m["cheapest_eur"],
         m["saving_eur"])
        for sensor, m in meters.items()
    ]  # fmt: skip
    rows.sort(key=lambda r: (-round(float(r[5] or 0.0), EQUAL), r[0]))
    return Result(SAVING_COLUMNS, rows, decimals=4, notes=plans.notes, as_of=plans.as_of)


def bill_ahead(bill: Result, projection: Result | None) -> Result:
    """The rows of view `bill` with each meter's projection (AHEAD_COLUMNS; None without
    one): the largest total first, then by sensor id."""
    ahead: dict[str, tuple[object, ...]] = {}
    if projection is not None:
        for row in _by_name(projection):
            ahead[str(row["sensor_id"])] = tuple(row[c] for c in AHEAD_COLUMNS)
    total = bill.columns.index("total_eur")
    rows = [(*row, *ahead.get(str(row[0]), (None,) * len(AHEAD_COLUMNS))) for row in bill.rows]
    rows.sort(key=lambda r: (-round(float(r[total]), EQUAL), r[0]))
    notes: Sequence[str] = (*bill.notes, *(projection.notes if projection else ()))
    return Result([*bill.columns, *AHEAD_COLUMNS], rows, decimals=4, notes=tuple(notes))
