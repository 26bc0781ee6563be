"""`meterlake query plans|bill|health`: the views of meterlake.read.more_views, answered.

Like `query q1..q4` (meterlake.read.answers.query_view), but over the views' own tables:
`plans` reads gold's month_plan_cost (time travel by version or instant), `health`
silver's readings and quarantine (as they are now).
"""

from __future__ import annotations

from contextlib import closing

from deltalake import DeltaTable

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.clock import zone_of
from meterlake.read.connection import connect, fetch
from meterlake.read.more_views import MORE_VIEW_TABLES
from meterlake.read.result import Result
from meterlake.read.views import COST_NOTE

NOTES = {
    "plans": (
        "the current month so far under every plan, cheapest first; saving_eur = the "
        "contract's cost minus this plan's",
        COST_NOTE,
    ),
    "bill": (
        "the current month so far: energy term (the contracted plan), power term (days so "
        "far x the daily charge), VAT (reduced on the first kWh, [bill] in the tariff file)",
    ),
    "health": (
        "today = the local date of the latest accepted reading of any meter; gaps and "
        "cadence in seconds; silent = no reading for more than [health] silent_cadences "
        "x the meter's cadence",
    ),
}
DECIMALS = {"plans": 4, "bill": 4, "health": 0}


def query_more(
    config: Config, view: str, version: int | None = None, as_of: str | None = None
) -> Result:
    """The rows of view `plans` or `health`; `version`/`as_of` apply to its tables."""
    if view not in MORE_VIEW_TABLES:
        raise MeterlakeError(f"unknown view {view!r}; known: {', '.join(MORE_VIEW_TABLES)}")
    tables = MORE_VIEW_TABLES[view]
    for table in tables:
        if not DeltaTable.is_deltatable(str(config.table_path(table))):
            raise MeterlakeError(
                f"table {table} not found under {config.lake}: run `meterlake run --once` first"
            )
    with closing(connect(config, version, as_of, tables)) as con:
        result = fetch(con, f"SELECT * FROM {view}", zone_of(config))
    return Result(result.columns, result.rows, decimals=DECIMALS[view], notes=NOTES[view])
