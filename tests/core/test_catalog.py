"""The catalog (meterlake.core.catalog) is the one list of tables: the writers' schemas,
the paths and the queries' tables agree with it."""

from __future__ import annotations

from pathlib import Path

from gold.answers import ANSWERS
from meterlake.core import catalog
from meterlake.core.config import Config
from silver.job import TABLES as SILVER_SCHEMAS


def test_every_table_lives_under_its_layer() -> None:
    config = Config(lake=Path("/lake"))
    for table in catalog.CATALOG:
        assert config.table_path(table.name) == Path("/lake") / table.layer / table.name


def test_the_writers_write_exactly_the_catalog_tables() -> None:
    assert tuple(SILVER_SCHEMAS) == catalog.names(layer="silver")
    assert tuple(ANSWERS) == catalog.LAYER_TABLES["gold"]
    assert catalog.GOLD_TABLES == ("month_energy", "day_energy", "halfhour_energy", "day_cost")
    assert catalog.QUERY_TABLES == {
        "bronze": ("bronze",),
        "silver": ("readings", "silver", "quarantine"),
        "gold": ("month_energy", "day_energy", "halfhour_energy", "day_cost", "month_plan_cost"),
    }


def test_each_gold_table_serves_one_view_and_only_appended_tables_are_compacted() -> None:
    served = {t.answers: t.name for t in catalog.CATALOG if t.answers}
    assert served == {"q1": "month_energy", "q2": "day_energy", "q3": "halfhour_energy",
                      "q4": "day_cost"}
    assert catalog.names(appended=True) == ("bronze", "readings", "silver", "quarantine")
