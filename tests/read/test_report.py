"""The report: notebooks/energy_report.ipynb and meterlake.read.report.

The lake is the small one of tests/report_lake.py, written with delta-rs (no
Kafka, no Spark); expected values are worked out by hand from what it holds.
The notebook itself is executed headless on a fresh kernel and exported to HTML.
"""
from __future__ import annotations

import ast
import re
from datetime import date
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from nbclient.exceptions import CellExecutionError

from meterlake.core.catalog import GOLD_TABLES
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read import report
from tests.report_lake import (
    PRICES,
    QUARANTINE_REASONS,
    build_report_lake,
    expected_s01_cost_today,
    write_table,
)

LISBON = "Europe/Lisbon"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report_lake(tmp_path_factory.mktemp("report") / "lake")


@pytest.fixture(scope="module")
def config(lake: Path) -> Config:
    return report.lake_config(lake)


# --------------------------------------------------------------------------- the committed notebook


def test_committed_notebook_has_no_outputs_or_execution_counts():
    nb = nbformat.read(report.NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    counted = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and c.execution_count is not None]
    assert with_outputs == [], f"cells with outputs (clear them before committing): {with_outputs}"
    assert counted == [], f"cells with execution counts: {counted}"


def test_first_code_cell_is_the_lake_parameter():
    nb = nbformat.read(report.NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    # the kernel runs in notebooks/: the project's lake/ is ../lake from there
    assert 'LAKE = os.environ.get("METERLAKE_LAKE", "../lake")' in first.source
    assert nb.metadata.kernelspec.name == report.KERNEL_NAME


def test_report_reads_the_lake_only_through_meterlake_lake():
    tree = ast.parse(Path(report.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"deltalake", "duckdb", "pyspark", "delta", "bronze", "silver", "gold"}


# --------------------------------------------------------------------------- data shaping


def test_lake_config_reads_a_relative_lake_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report.lake_config("lake").lake == tmp_path.resolve() / "lake"
    assert report.lake_config("/data/lake").lake == Path("/data/lake")


def test_the_report_command_takes_its_lake_by_the_one_precedence(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(report, "render_report", lambda lake, out, timeout: made.append(lake))
    monkeypatch.setenv("METERLAKE_LAKE", str(tmp_path / "from-env"))
    assert report.main(["--out", str(tmp_path / "r.html")]) == 0
    assert report.main(["--lake", "given", "--out", str(tmp_path / "r.html")]) == 0
    assert made == [tmp_path / "from-env", Path("given")]


def test_missing_lake_is_one_clear_error(tmp_path: Path):
    with pytest.raises(MeterlakeError, match="no lake to report on"):
        report.require_lake(report.lake_config(tmp_path / "nowhere"))


def test_lake_without_answers_is_one_clear_error(tmp_path: Path):
    for table in GOLD_TABLES:
        write_table(tmp_path, table, [])  # created by the pipeline, nothing merged yet
    with pytest.raises(MeterlakeError, match="no answers yet"):
        report.require_lake(report.lake_config(tmp_path))


def test_table_overview_counts_rows_and_gold_versions(config: Config):
    overview = report.table_overview(config).set_index("table")
    assert overview.loc["bronze", "rows"] == overview.loc["readings", "rows"] + sum(
        QUARANTINE_REASONS.values())
    assert overview.loc["day_cost", "rows"] == 6  # 3 meters x 2 days
    assert overview.loc["day_cost", "version"] == 3
    assert overview.loc["day_cost", "commits"] == 4


def test_answers_are_the_sorted_views(config: Config):
    q2 = report.answer(config, "q2")
    assert list(q2.frame["sensor_id"]) == ["S03", "S01", "S02"]
    # 2 February 00:00-15:00 is 30 half hours; S01 uses 0.3 kWh in each.
    assert q2.frame.set_index("sensor_id")["energy_kwh"].to_dict() == pytest.approx(
        {"S01": 9.0, "S02": 4.5, "S03": 18.0})
    assert any("2024-02-02" in note for note in q2.notes)


def test_q3_is_pivoted_by_period(config: Config):
    q3 = report.answer(config, "q3").frame
    assert list(q3.columns) == ["S01", "S02", "S03"]
    assert list(q3.index[:3]) == ["00:00", "00:30", "01:00"]
    assert q3.index[-1] == "14:30"


def test_cost_by_band_splits_todays_cost_by_tariff_band(config: Config):
    bands = report.cost_by_band(config)
    assert list(bands.columns[:2]) == ["ponta", "cheias"]  # most expensive first
    assert bands.attrs["prices"] == pytest.approx(PRICES)
    assert bands.loc["S01"].to_dict() == pytest.approx(expected_s01_cost_today())
    # S02 uses half of S01 in every half hour; its late reading's retraction
    # (negative piece) and the two replacement pieces must net out.
    assert bands.loc["S02"].to_numpy() == pytest.approx(bands.loc["S01"].to_numpy() / 2)


def test_cost_by_band_adds_up_to_q4_in_q4_order(config: Config):
    bands = report.cost_by_band(config)
    q4 = report.answer(config, "q4").frame
    assert list(bands.index) == list(q4["sensor_id"])
    assert bands.sum(axis=1).to_numpy() == pytest.approx(q4["cost_eur"].to_numpy())


def test_band_split_check_and_styled_tables(config: Config):
    q4 = report.answer(config, "q4")
    assert report.bands_match_q4(report.cost_by_band(config), q4.frame) < 1e-9
    html = report.style_answer(q4).to_html()
    assert "2.6102" in html and "no VAT" in html  # S03: 18 kWh today, 4 decimals; the note
    assert "longest gap" in report.style_gaps(report.longest_gaps(config)).to_html()


def test_halfhour_matrix_is_meters_by_half_hours_of_today(config: Config):
    matrix = report.halfhour_matrix(config)
    assert list(matrix.index) == ["S01", "S02", "S03"]
    assert matrix.shape == (3, 30)
    assert np.allclose(matrix.loc["S01"], 0.3)
    # S03's 2-hour silence is spread evenly: still 0.6 kWh per half hour.
    assert np.allclose(matrix.loc["S03"], 0.6)


def test_answer_by_version_time_travels_through_day_cost(config: Config):
    by_version = report.answer_by_version(config, "q4")
    summary = report.version_summary(by_version)
    assert list(summary.index) == [0, 1, 2, 3]
    assert list(summary["sensors"]) == [0, 3, 3, 3]
    days = by_version.groupby("version")["day"].first()
    assert list(days) == [None, date(2024, 2, 1), date(2024, 2, 2), date(2024, 2, 2)]
    # Version 1 answers for 1 February 00:00-18:00: 36 half hours of 0.3 kWh for
    # S01, 16 at 0.1072 (vazio, super vazio), 17 at 0.1741 (cheias), 3 at 0.24.
    v1 = by_version[by_version["version"] == 1].set_index("sensor_id")["value"]
    assert v1["S01"] == pytest.approx(0.3 * (16 * 0.1072 + 17 * 0.1741 + 3 * 0.24))
    latest = report.answer(config, "q4").frame.set_index("sensor_id")["cost_eur"]
    v3 = by_version[by_version["version"] == 3].set_index("sensor_id")["value"]
    assert v3.sort_index().to_numpy() == pytest.approx(latest.sort_index().to_numpy())


def test_quarantine_reasons_most_frequent_first(config: Config):
    reasons = report.quarantine_reasons(config)
    assert list(reasons["reason"]) == ["bad_energy", "malformed_json", "duplicate", "too_late"]
    assert dict(zip(reasons["reason"], reasons["messages"], strict=True)) == QUARANTINE_REASONS


def test_message_funnel_accounts_for_every_message(config: Config):
    funnel = report.message_funnel(config)["count"]
    assert funnel.iloc[0] == funnel.iloc[1] + funnel.iloc[2] == 702


def test_readings_per_day_per_meter(config: Config):
    per_day = report.readings_per_day(config)
    assert list(per_day.columns) == ["2024-02-01", "2024-02-02"]
    # 144 a day every 10 minutes; the 2nd runs to 15:00 (91 readings); S02 has
    # one late reading more, S03 misses the 11 readings of its 2-hour silence.
    assert per_day.to_dict("index") == {
        "S01": {"2024-02-01": 144, "2024-02-02": 91},
        "S02": {"2024-02-01": 144, "2024-02-02": 92},
        "S03": {"2024-02-01": 144, "2024-02-02": 80},
    }


def test_longest_gap_per_meter(config: Config):
    gaps = report.longest_gaps(config).set_index("sensor_id")
    assert gaps.index[0] == "S03"
    assert gaps.loc["S03", "longest_gap_min"] == pytest.approx(120.0)
    assert gaps.loc["S03", "gap_from"] == pd.Timestamp("2024-02-02 03:00", tz=LISBON)
    assert gaps.loc["S01", "longest_gap_min"] == pytest.approx(10.0)
    assert gaps.loc["S02", "median_spacing_s"] == pytest.approx(600.0)


# --------------------------------------------------------------------------- plots


def _drawn(fig: Figure) -> int:
    """How many marks with data the figure's axes carry: bars, images, lines."""
    marks = 0
    for ax in fig.axes:
        marks += sum(1 for p in ax.patches
                     if getattr(p, "get_height", None) and (p.get_height() or p.get_width()))
        marks += sum(1 for image in ax.images if np.ma.count(image.get_array()) > 0)
        marks += sum(1 for line in ax.lines if len(line.get_xdata()) > 0)
    return marks


PLOTS = {
    "pipeline": lambda c: report.plot_pipeline({"bronze": 10}),
    "month_kwh": lambda c: report.plot_month_kwh(report.answer(c, "q1").frame),
    "cost_by_band": lambda c: report.plot_cost_by_band(report.cost_by_band(c)),
    "halfhour_heatmap": lambda c: report.plot_halfhour_heatmap(report.halfhour_matrix(c)),
    "answer_by_version": lambda c: report.plot_answer_by_version(report.answer_by_version(c)),
    "quarantine_reasons": lambda c: report.plot_quarantine_reasons(report.quarantine_reasons(c)),
    "readings_per_day": lambda c: report.plot_readings_per_day(report.readings_per_day(c)),
    "longest_gaps": lambda c: report.plot_longest_gaps(report.longest_gaps(c)),
}


@pytest.mark.parametrize("name", list(PLOTS))
def test_plot_has_data_and_a_title(config: Config, name: str):
    fig = PLOTS[name](config)
    assert isinstance(fig, Figure)
    assert _drawn(fig) > 0, f"{name}: nothing drawn"
    assert fig.alt_text() != "chart", f"{name}: no title"
    png = fig.to_png(dpi=40)
    assert png.startswith(b"\x89PNG")


def test_stacked_bars_hold_one_bar_per_meter_and_band(config: Config):
    bands = report.cost_by_band(config)
    fig = report.plot_cost_by_band(bands)
    assert len(fig.axes[0].patches) == bands.size
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["S03", "S01", "S02"]  # sorted like q4


def test_plots_of_nothing_say_so():
    empty = pd.DataFrame(columns=["reason", "messages", "sensors"])
    fig = report.plot_quarantine_reasons(empty)
    assert "nothing quarantined" in [t.get_text() for t in fig.axes[0].texts]


# --------------------------------------------------------------------------- the notebook


def test_notebook_runs_headless_and_exports_self_contained_html(lake: Path, tmp_path: Path):
    out = tmp_path / "build" / "energy_report.html"
    assert report.main(["--lake", str(lake), "--out", str(out), "--timeout", "120"]) == 0
    html = out.read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)
    assert len(images) == len(PLOTS)
    # No cell wrote to stderr (a warning would end up in the page) or failed.
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html
    assert "Traceback" not in html
    assert not re.search(r'<script[^>]+src="https?://', html), "a script would load from a CDN"
    assert "no VAT" in html and "fixed power charge" in html
    assert "S03" in html and "messages in bronze" in html


def test_a_failing_cell_fails_the_run(lake: Path, tmp_path: Path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nassert os.environ['METERLAKE_LAKE']"),
        nbformat.v4.new_code_cell("raise ValueError('broken cell')"),
    ])
    notebook = tmp_path / "broken.ipynb"
    nbformat.write(nb, notebook)
    with pytest.raises(CellExecutionError, match="broken cell"):
        report.execute_notebook(lake, notebook, timeout=60)


def test_report_command_refuses_a_missing_lake(tmp_path: Path, capsys: pytest.CaptureFixture):
    code = report.main(["--lake", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no lake to report on" in err[0]
    assert not (tmp_path / "r.html").exists()
