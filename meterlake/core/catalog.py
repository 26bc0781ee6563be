"""The catalog: every Delta table of the lake, as data. Paths (meterlake.core.config), the
queries' checkpoints and locks (meterlake.app.pipeline), compaction, the read side, the
bench and the tests all derive their lists from here. The schemas live with the code
that writes each table (silver.job, gold.answers, bronze.job)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    layer: str  # its folder: <lake>/<layer>/<name>
    query: str | None  # the streaming query whose checkpoint it is checked against
    appended: bool  # streams append small files to it (meterlake.core.compaction)
    answers: str | None  # the view it serves (q1..q4), for gold
    description: str


CATALOG: tuple[Table, ...] = (
    Table("bronze", "bronze", "bronze", True, None, "raw Kafka messages, one row per offset"),
    # Written by bronze only with [streams] on_data_loss = "record"; no checkpoint of its own.
    Table("data_loss", "bronze", None, False, None, "offsets Kafka lost before bronze read them"),
    Table("readings", "silver", "silver", True, None, "accepted readings"),
    Table("silver", "silver", "silver", True, None,
          "consumption pieces, one half-hour period each, with the tariff"),
    Table("quarantine", "silver", "silver", True, None,
          "rejected messages and anomalies, with a reason code"),
    Table("month_energy", "gold", "gold", False, "q1", "kWh per sensor and month"),
    Table("day_energy", "gold", "gold", False, "q2", "kWh per sensor and day"),
    Table("halfhour_energy", "gold", "gold", False, "q3", "kWh per sensor and half hour"),
    Table("day_cost", "gold", "gold", False, "q4", "EUR per sensor and day"),
    Table("month_plan_cost", "gold", "gold", False, None,
          "EUR per sensor, month and tariff plan (view: plans)"),
)
LAYERS = ("bronze", "silver", "gold")


def names(*, layer: str | None = None, query: str | None = None,
          appended: bool | None = None) -> tuple[str, ...]:
    """The tables' names, in catalog order, that match every criterion given."""
    return tuple(
        t.name for t in CATALOG
        if (layer is None or t.layer == layer)
        and (query is None or t.query == query)
        and (appended is None or t.appended == appended)
    )


LAYER_TABLES = {layer: names(layer=layer) for layer in LAYERS}
QUERY_TABLES = {query: names(query=query) for query in LAYERS}  # one query per layer
# The tables of the four answers (q1..q4): what the page, its timeline and the report
# follow. The gold layer (LAYER_TABLES["gold"]) also holds month_plan_cost.
GOLD_TABLES = tuple(t.name for t in CATALOG if t.layer == "gold" and t.answers)
VIEW_TABLES = {t.answers: t.name for t in CATALOG if t.answers}  # each view reads one table
