"""The page's panels beyond the four answers, and their API (meterlake.app.web):

- `more_view(config, view, ...)`: the rows of `meterlake query plans|bill|health|
  projection`, for `/api/plans` ... `/api/projection` (same rows as `--format json`);
- `panels_document(...)`: what the page draws, `/api/panels`: plans (each meter's
  saving against its contract), the bill beside the month ahead, meter health; each
  with the `[read] page_sensors` meters that stand out (the largest saving, the largest
  bill, every silent meter and the first others) and those picked, how many in all.

Plans, bill and health travel by instant (`as_of`, as `query --as-of`); the projection
is of gold as it is now, so it is left out of a past moment.
"""

from __future__ import annotations

from typing import Any

from deltalake import DeltaTable

from meterlake.app.output import json_objects
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.clock import wall_clock, zone_of
from meterlake.read.more_views import MORE_VIEW_TABLES
from meterlake.read.projection import query_projection
from meterlake.read.questions import query_more
from meterlake.read.result import Result
from meterlake.read.summaries import bill_ahead, plan_savings

PROJECTION = "projection"
MORE_VIEWS = (*MORE_VIEW_TABLES, PROJECTION)
PANELS = ("plans", "bill", "health")


class Missing(MeterlakeError):
    """A table the view reads is not in the lake yet."""


def _require(config: Config, view: str) -> None:
    tables = MORE_VIEW_TABLES.get(view, ("halfhour_energy",))
    for table in tables:
        if not DeltaTable.is_deltatable(str(config.table_path(table))):
            raise Missing(f"table {table} not found under {config.lake}: "
                          "run `meterlake run --once` first")  # fmt: skip


def more_view(
    config: Config, view: str, version: int | None = None, as_of: str | None = None
) -> Result:
    """The rows of `meterlake query VIEW` for a view beyond the four answers."""
    _require(config, view)
    if view == PROJECTION:
        if version is not None or as_of is not None:
            raise MeterlakeError("the projection is of gold as it is now: no version or as_of")
        return query_projection(config)
    return query_more(config, view, version, as_of)


def _shown(result: Result, largest: int, chosen: set[str],
           also: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The first `largest` rows, those of the `chosen` meters, and those whose column
    `also` is true; with how many meters there are."""
    flag = result.columns.index(also) if also else None
    rows = [row for i, row in enumerate(result.rows)
            if i < largest or row[0] in chosen or (flag is not None and row[flag])]  # fmt: skip
    return {
        "columns": result.columns,
        "rows": json_objects(result.columns, rows),
        "sensor_count": len(result.rows),
        "notes": list(result.notes),
    }


def _panel(config: Config, view: str, as_of: str | None, errors: dict[str, str]) -> Result:
    if view == "plans":
        return plan_savings(more_view(config, "plans", as_of=as_of))
    if view == "bill":
        bill, projection = more_view(config, "bill", as_of=as_of), None
        if as_of is None:
            try:
                projection = more_view(config, PROJECTION)
            except MeterlakeError as exc:  # the bill without its month ahead
                errors[PROJECTION] = str(exc)
        return bill_ahead(bill, projection)
    return more_view(config, "health", as_of=as_of)


def panels_document(
    config: Config, as_of: str | None, largest: int, chosen: set[str]
) -> dict[str, Any]:
    """The panels at instant `as_of` (None: live); a panel that cannot be answered is
    in `errors` instead (its table missing, say), the others are drawn."""
    doc: dict[str, Any] = {"as_of": as_of, "panels": {}, "errors": {}}
    for view in PANELS:
        try:
            result = _panel(config, view, as_of, doc["errors"])
        except MeterlakeError as exc:
            doc["errors"][view] = str(exc)
            continue
        if view == "health":
            result = _local_times(config, result)
        panel = _shown(result, largest, chosen, "silent" if view == "health" else None)
        if view == "health":
            silent = result.columns.index("silent")
            panel["silent_count"] = sum(1 for row in result.rows if row[silent])
        doc["panels"][view] = panel
    return doc


def _local_times(config: Config, health: Result) -> Result:
    """Health with each meter's latest reading as people read it (`wall_clock`)."""
    zone, at = zone_of(config), health.columns.index("last_reading")
    rows = [(*row[:at], wall_clock(row[at], zone), *row[at + 1:]) for row in health.rows]
    return Result(health.columns, rows, notes=health.notes)
