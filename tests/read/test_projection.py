"""The month ahead on hand-made months: a steady meter and a weekend-only meter, from
the profile function and through `query projection` on a gold table written by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from meterlake.core.config import load_config
from meterlake.read.projection import project, query_projection
from tests.helpers import tariff
from tests.report_lake import write_table

NOW = datetime(2024, 2, 10, 0, 0, tzinfo=UTC)  # Saturday; February: Lisbon time is UTC
# The seed's daily cycle in winter: 8 half hours ponta (0.24), 20 cheias (0.1741),
# 20 vazio or super vazio (0.1072): 0.5 kWh each half hour costs 3.773 EUR a day.
DAY_AT_HALF_KWH = 0.5 * (8 * 0.24 + 20 * 0.1741 + 20 * 0.1072)


def _month_so_far() -> pd.DataFrame:
    """S: 0.5 kWh every half hour since Feb 1; W: 1 kWh every half hour on Saturdays
    and Sundays (Feb 3-4), nothing on weekdays."""
    periods = pd.date_range("2024-02-01", "2024-02-10", freq="30min", inclusive="left",
                            tz="UTC")  # fmt: skip
    weekend = periods.weekday >= 5
    return pd.concat([
        pd.DataFrame({"sensor_id": "S", "period_start": periods, "energy_kwh": 0.5}),
        pd.DataFrame({"sensor_id": "W", "period_start": periods, "energy_kwh": weekend * 1.0}),
    ])  # fmt: skip


def test_the_profile_projects_each_weekday_and_half_hour() -> None:
    got = project(_month_so_far(), NOW, tariff()).set_index("sensor_id")
    # S: 9 days so far, 0.5 x 48 x 9 = 216 kWh; the whole of February 0.5 x 48 x 29
    assert got.loc["S", "kwh_so_far"] == pytest.approx(216.0)
    assert got.loc["S", "kwh_projected"] == pytest.approx(696.0)
    assert got.loc["S", "cost_so_far_eur"] == pytest.approx(9 * DAY_AT_HALF_KWH)
    assert got.loc["S", "cost_projected_eur"] == pytest.approx(29 * DAY_AT_HALF_KWH)
    # W: one weekend so far (96 kWh); February 2024 has 8 weekend days: 8 x 48 = 384 kWh,
    # each weekend day costing twice S's day
    assert got.loc["W", "kwh_so_far"] == pytest.approx(96.0)
    assert got.loc["W", "kwh_projected"] == pytest.approx(384.0)
    assert got.loc["W", "cost_projected_eur"] == pytest.approx(8 * 2 * DAY_AT_HALF_KWH)


def test_query_projection_reads_the_current_month_of_gold(tmp_path: Path) -> None:
    frame = _month_so_far()
    frame["day"] = frame["period_start"].dt.date
    frame["as_of"] = frame["period_start"] + pd.Timedelta(minutes=30)
    frame["updated_at"] = NOW
    earlier = {"sensor_id": "S", "period_start": pd.Timestamp("2024-01-31 23:30", tz="UTC"),
               "energy_kwh": 99.0, "day": datetime(2024, 1, 31).date(),
               "as_of": NOW, "updated_at": NOW}  # January: not this month  # fmt: skip
    write_table(tmp_path / "lake", "halfhour_energy",
                [*frame.to_dict("records"), earlier])  # fmt: skip
    result = query_projection(replace(load_config(), lake=tmp_path / "lake"))
    assert result.columns == ["sensor_id", "kwh_so_far", "kwh_projected", "cost_so_far_eur",
                              "cost_projected_eur"]  # fmt: skip
    assert [(r[0], round(r[1], 9), round(r[2], 9)) for r in result.rows] == [
        ("S", 216.0, 696.0), ("W", 96.0, 384.0)]
