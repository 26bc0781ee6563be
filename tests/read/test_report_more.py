"""The report's sections beyond the four answers (meterlake.read.report_more and the
notebook): plans compared, the bill and the month ahead, meter health.

The lake is the small one of tests/report_lake.py (S01..S03, 1-2 February 2024) with
month_plan_cost written by hand, and one more meter whose id is markup (`<b>bold</b>`):
the report must show it as text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from meterlake.core.config import Config
from meterlake.read import report, report_more
from meterlake.read.projection import query_projection
from meterlake.read.questions import query_more
from tests.report_lake import build_report_lake, write_table

BOLD = "<b>bold</b>"
DOLLARS = "$x^2$ meter with a long name"
NOW = datetime(2024, 2, 2, 15, 0, tzinfo=UTC)  # the report lake's latest reading
FEB = date(2024, 2, 1)
# (sensor, plan, EUR this month): every meter's contract is the default, su-tri-diario
COSTS = [("S01", "su-tri-diario", 5.0), ("S01", "erse-simples", 4.5),
         ("S02", "su-tri-diario", 2.0), ("S02", "erse-simples", 2.2),
         ("S03", "su-tri-diario", 4.0), ("S03", "erse-simples", 3.9),
         (BOLD, "su-tri-diario", 3.0), (BOLD, "erse-simples", 1.0),
         (DOLLARS, "su-tri-diario", 1.0), (DOLLARS, "erse-simples", 1.25)]  # fmt: skip


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    lake = build_report_lake(tmp_path_factory.mktemp("report_more") / "lake")
    write_table(lake, "month_plan_cost", [
        {"sensor_id": s, "month": FEB, "plan": p, "cost_eur": c, "as_of": NOW, "updated_at": NOW}
        for s, p, c in COSTS])  # fmt: skip
    write_table(lake, "month_energy", [
        {"sensor_id": s, "month": FEB, "energy_kwh": 10.0, "as_of": NOW, "updated_at": NOW}
        for s in (BOLD, DOLLARS)], mode="append")  # fmt: skip
    return report.lake_config(lake)


def test_savings_are_each_meters_contract_against_its_cheapest_plan(config):
    frame = report_more.savings(config)
    got = [(s, c, round(ce, 9), b, round(be, 9), round(v, 9))
           for s, c, ce, b, be, v in frame.itertuples(index=False)]  # fmt: skip
    # by hand from COSTS: BOLD 3.0 -> 1.0 saves 2, S01 5.0 -> 4.5 saves 0.5, S03 0.1;
    # S02 and DOLLARS are on their cheapest plan (by id)
    assert got == [
        (BOLD, "su-tri-diario", 3.0, "erse-simples", 1.0, 2.0),
        ("S01", "su-tri-diario", 5.0, "erse-simples", 4.5, 0.5),
        ("S03", "su-tri-diario", 4.0, "erse-simples", 3.9, 0.1),
        (DOLLARS, "su-tri-diario", 1.0, "su-tri-diario", 1.0, 0.0),
        ("S02", "su-tri-diario", 2.0, "su-tri-diario", 2.0, 0.0),
    ]


def test_the_bill_section_is_the_bill_beside_the_projection(config):
    frame = report_more.bill_and_month_ahead(config).set_index("sensor_id")
    bill = query_more(config, "bill").to_pandas().set_index("sensor_id")
    ahead = query_projection(config).to_pandas().set_index("sensor_id")
    assert list(frame.index) == list(bill.sort_values("total_eur", ascending=False).index)
    assert frame[bill.columns].loc[bill.index].equals(bill)
    assert frame.loc[ahead.index, "kwh_projected"].tolist() == ahead["kwh_projected"].tolist()
    # meters with a bill but no half hours (the two written by hand) have no projection
    assert frame.loc[[BOLD, DOLLARS], "kwh_projected"].isna().all()


def test_health_section_shows_local_times_and_no_silent_meter(config):
    frame = report_more.health(config)
    assert list(frame["sensor_id"]) == ["S01", "S02", "S03"]
    assert list(frame["last_reading"]) == ["2024-02-02 15:00"] * 3
    assert not frame["silent"].any()


def test_tables_escape_ids_and_charts_draw_them_as_text(config):
    html = report_more.style_savings(report_more.savings(config)).to_html()
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and BOLD not in html
    bill = report_more.bill_and_month_ahead(config)
    assert BOLD not in report_more.style_bill(bill).to_html()
    figure = report_more.plot_savings(report_more.savings(config))
    figure.to_png()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == [BOLD, "S01", "S03", "$x^2$ meter with a …", "S02"]
    assert not any(t.get_parse_math() for t in figure.axes[0].get_xticklabels())
    report_more.plot_bill(bill).to_png()


def test_the_notebook_reports_plans_bill_and_health_with_ids_as_text(config, tmp_path: Path):
    out = report.render_report(config.lake, tmp_path / "report.html")
    page = out.read_text()
    for heading in ("Which plan would have been cheaper?", "The bill so far, and the month ahead",
                    "Meter health"):  # fmt: skip
        assert heading in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and BOLD not in page
