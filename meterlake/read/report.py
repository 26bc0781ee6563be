"""The energy report: what notebooks/energy_report.ipynb shows, and how it is rendered.

Two halves:

- data shaping: small pandas frames read from the lake *only* through the read
  side (the sorted views q1..q4 of `meterlake.read.answers`, DuckDB over the tables
  of `meterlake.read.connection`, Delta history and time travel), so the report
  shows what `meterlake query` shows and never recomputes an answer its own way;
- plotting: each `plot_*` function takes one of those frames and returns a
  matplotlib `Figure` (built without pyplot, so nothing is shown twice and
  nothing global is left behind; the notebook displays the returned figure).

`render_report(lake, out)` executes the notebook on a fresh kernel (the Python
running this module, so the project's virtual environment) and exports a
self-contained HTML page: images inline as base64, no script loaded from a CDN.
`python -m meterlake.read.report --lake lake --out build/energy_report.html` (what
`make report` runs) does the same from the command line.

"Today" and "this month" follow docs/semantics.md: they are the local date and
month of the latest `as_of` of the gold table that answers the question. Costs
are the energy term only: no VAT, no fixed power charge.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MaxNLocator

from meterlake.core.catalog import GOLD_TABLES, LAYER_TABLES
from meterlake.core.config import PROJECT_ROOT, Config, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location, on_object_store
from meterlake.core.storage import export
from meterlake.read.answers import query_view
from meterlake.read.clock import wall_clock
from meterlake.read.connection import connect
from meterlake.read.history import history
from meterlake.read.travel import open_table
from meterlake.read.views import VIEW_TABLES, cost_by_band_sql

if TYPE_CHECKING:
    import nbformat
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

NOTEBOOK = PROJECT_ROOT / "notebooks" / "energy_report.ipynb"
DEFAULT_OUT = Path("build") / "energy_report.html"  # from the working directory
KERNEL_NAME = "python3"

# The "now" of each view, read from the view's own gold table (in the connection's
# time zone, the configured one).
_NOW_SQL = "SELECT max(as_of) FROM {table}"


# --------------------------------------------------------------------------- the lake


def lake_config(lake: str | Path, config: Config | None = None) -> Config:
    """The configuration with the lake at `lake`, made absolute: a relative path is from
    the working directory, as everywhere (conf/meterlake.toml), so the notebook's kernel,
    which runs in notebooks/, is given the lake the caller meant."""
    base = config if config is not None else load_config()
    if on_object_store(lake):
        return base.with_overrides(lake=str(lake))
    return base.with_overrides(lake=str(Path(lake).expanduser().resolve()))


def _frame(
    config: Config, sql: str, tables: Sequence[str], version: int | None = None
) -> pd.DataFrame:
    """One query over the named tables (DuckDB through meterlake.read.connection.connect)."""
    with closing(connect(config, version=version, tables=tables)) as con:
        return con.execute(sql).df()


def _present(config: Config, table: str) -> bool:
    try:
        open_table(config, table)
    except MeterlakeError:
        return False
    return True


def require_lake(config: Config) -> None:
    """Fail with one clear line unless the lake has its gold tables."""
    missing = [t for t in GOLD_TABLES if not _present(config, t)]  # the four answers
    if missing:
        raise MeterlakeError(
            f"no lake to report on at {config.lake} (missing {', '.join(missing)}): "
            "run `make demo` or `meterlake run --once` first"
        )
    if view_day(config, "day_cost") is None:
        raise MeterlakeError(
            f"the lake at {config.lake} has no answers yet (its gold tables are empty): "
            "publish readings and run `meterlake run --once` first"
        )


def table_overview(config: Config) -> pd.DataFrame:
    """One row per table of the lake: layer, rows now, Delta version and number of commits."""
    rows = []
    for layer, tables in LAYER_TABLES.items():
        for table in tables:
            if not _present(config, table):
                rows.append((layer, table, 0, None, 0))
                continue
            count = int(_frame(config, f"SELECT count(*) AS n FROM {table}", (table,))["n"][0])
            commits = history(config, table).to_pandas()
            rows.append((layer, table, count, int(commits["version"].max()), len(commits)))
    return pd.DataFrame(rows, columns=["layer", "table", "rows", "version", "commits"])


# --------------------------------------------------------------------------- the answers


@dataclass(frozen=True)
class Answer:
    """One view's sorted answer and the lines that say what it is (day, version, notes)."""

    view: str
    frame: pd.DataFrame
    notes: tuple[str, ...]


def answer(config: Config, view: str, version: int | None = None) -> Answer:
    """The sorted answer of q1..q4 as `meterlake query` gives it; q3 comes pivoted."""
    result = query_view(config, view, version=version)
    frame = result.to_pandas()
    if view == "q3" and not frame.empty:
        # the time of day, with the offset only in October's repeated hour
        frame["period_start"] = [wall_clock(t)[11:] for t in frame["period_start"]]
        frame = frame.set_index("period_start")
        frame.index.name = "period"
    return Answer(view, frame, result.notes)


def style_answer(found: Answer, rows: int | None = None):
    """A small styled table: units in the header, kWh to 3 decimals, EUR to 4; the notes as caption.

    `rows`: show only the last `rows` rows (q3: the latest half hours).
    """
    frame = found.frame if rows is None else found.frame.tail(rows)
    decimals = 4 if found.view == "q4" else 3
    if found.view == "q3":
        shown = frame
    else:
        shown = frame.rename(columns={"energy_kwh": "kWh", "cost_eur": "€"}).set_index("sensor_id")
        shown.index.name = "sensor"
    caption = "<br>".join(found.notes)
    if rows is not None and len(found.frame) > rows:
        caption += f"<br>(the last {rows} of {len(found.frame)} half hours)"
    return (  # ids are untrusted text: escaped as HTML (rows, and q3's columns)
        shown.style.format(f"{{:.{decimals}f}}", na_rep="·", escape="html")
        .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
        .set_caption(caption)
        .set_table_styles([{"selector": "caption", "props": "caption-side: bottom; "
                            "font-size: 85%; color: #555; text-align: left"}])
        .set_properties(**{"text-align": "right"})
    )


def view_day(config: Config, table: str, version: int | None = None) -> pd.Timestamp | None:
    """Local "now" of a gold table (latest as_of, in the configured zone), at a version
    if given."""
    value = _frame(config, _NOW_SQL.format(table=table), (table,), version).iloc[0, 0]
    return None if pd.isna(value) else pd.Timestamp(value)


def cost_by_band(config: Config) -> pd.DataFrame:
    """Today's cost per sensor and tariff band, from the silver pieces of the current day.

    The current day is q4's (the local date of day_cost's latest as_of). Pieces
    include retractions (negative kWh and cost), so a plain sum is the answer.
    Rows: sensors, sorted like q4 (total descending, then id descending);
    columns: bands, most expensive first; `frame.attrs["prices"]`: € per kWh.
    """
    sql = cost_by_band_sql(config.semantics.zone)
    long = _frame(config, sql, ("silver", "day_cost"))
    if long.empty:
        return pd.DataFrame(index=pd.Index([], name="sensor_id"))
    prices = long.groupby("band")["price"].max().sort_values(ascending=False, kind="stable")
    wide = long.pivot_table(index="sensor_id", columns="band", values="cost_eur", aggfunc="sum")
    wide = wide.reindex(columns=list(prices.index)).fillna(0.0)
    wide.columns.name = "band"
    total = wide.sum(axis=1).round(9)
    order = sorted(wide.index, key=lambda s: (total[s], s), reverse=True)
    wide = wide.loc[order]
    wide.attrs["prices"] = prices.to_dict()
    return wide


def halfhour_matrix(config: Config) -> pd.DataFrame:
    """q3 turned on its side: one row per sensor, one column per half hour (HH:MM), kWh."""
    frame = answer(config, "q3").frame
    matrix = frame.T.astype(float)
    matrix.index.name = "sensor_id"
    return matrix


# --------------------------------------------------------------------------- time travel


def answer_by_version(config: Config, view: str = "q4", last: int = 24) -> pd.DataFrame:
    """The answer of `view` at each of the last `last` versions of its gold table.

    Long format: version, committed (local time of the commit), operation, now
    (the view's local "now" at that version), day (its current day), sensor_id,
    value (kWh or €). A version whose table is empty has one row with no sensor.
    """
    table = VIEW_TABLES[view]
    commits = history(config, table).to_pandas().sort_values("version").tail(last)
    value = "cost_eur" if view == "q4" else "energy_kwh"
    rows = []
    for commit in commits.itertuples(index=False):
        version = int(commit.version)
        now = view_day(config, table, version)
        found = answer(config, view, version).frame
        base = {"version": version, "committed": pd.Timestamp(commit.timestamp),
                "operation": commit.operation, "now": now,
                "day": now.date() if now is not None else None}
        if found.empty:
            rows.append({**base, "sensor_id": None, "value": np.nan})
        for sensor, amount in zip(found["sensor_id"], found[value], strict=True):
            rows.append({**base, "sensor_id": sensor, "value": float(amount)})
    return pd.DataFrame(rows, columns=["version", "committed", "operation", "now", "day",
                                       "sensor_id", "value"])


def version_summary(by_version: pd.DataFrame) -> pd.DataFrame:
    """One row per version: when it was written, the day it answers for, the total."""
    grouped = by_version.groupby("version", sort=True)
    summary = grouped.agg(committed=("committed", "first"), operation=("operation", "first"),
                          now=("now", "first"), sensors=("sensor_id", "count"),
                          total=("value", "sum"))
    summary["committed"] = summary["committed"].map(wall_clock)
    summary["now"] = summary["now"].map(
        lambda t: wall_clock(t) if isinstance(t, pd.Timestamp) else "(empty)")
    return summary


# --------------------------------------------------------------------------- data quality


def message_funnel(config: Config) -> pd.DataFrame:
    """Where the messages went: bronze in, readings accepted, quarantine rows by kind."""
    rows = []
    for table, label in (("bronze", "messages in bronze"), ("readings", "readings accepted")):
        if _present(config, table):
            n = _frame(config, f"SELECT count(*) AS n FROM {table}", (table,))["n"][0]
            rows.append((label, int(n)))
    if _present(config, "quarantine"):
        n = _frame(config, "SELECT count(*) AS n FROM quarantine", ("quarantine",))["n"][0]
        rows.append(("quarantine rows (rejections and anomalies)", int(n)))
    return pd.DataFrame(rows, columns=["what", "count"]).set_index("what")


def quarantine_reasons(config: Config) -> pd.DataFrame:
    """Quarantine rows per reason code, most frequent first, with how many sensors had one."""
    if not _present(config, "quarantine"):
        return pd.DataFrame(columns=["reason", "messages", "sensors"])
    sql = """
    SELECT reason, count(*) AS messages, count(DISTINCT sensor_id) AS sensors
    FROM quarantine GROUP BY reason ORDER BY messages DESC, reason
    """
    return _frame(config, sql, ("quarantine",))


def readings_per_day(config: Config) -> pd.DataFrame:
    """Accepted readings per sensor (rows) and local day (columns)."""
    sql = "SELECT sensor_id, day, count(*) AS readings FROM readings GROUP BY ALL"
    long = _frame(config, sql, ("readings",))
    wide = long.pivot_table(index="sensor_id", columns="day", values="readings",
                            aggfunc="sum", fill_value=0)
    wide.columns = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in wide.columns]
    wide.columns.name = "day"
    return wide.sort_index()


def longest_gaps(config: Config) -> pd.DataFrame:
    """Per sensor: readings, typical (median) spacing, and the longest gap between readings.

    Sorted by the longest gap, longest first. Times are local.
    """
    sql = """
    WITH spaced AS (
        SELECT sensor_id, event_time,
               lag(event_time) OVER (PARTITION BY sensor_id ORDER BY event_time) AS previous
        FROM readings
    ),
    gaps AS (
        SELECT sensor_id, previous, event_time,
               epoch(event_time) - epoch(previous) AS gap_s
        FROM spaced
    )
    SELECT sensor_id,
           count(*) AS readings,
           median(gap_s) AS median_spacing_s,
           max(gap_s) / 60.0 AS longest_gap_min,
           arg_max(previous, gap_s) AS gap_from,
           arg_max(event_time, gap_s) AS gap_to
    FROM gaps
    GROUP BY sensor_id
    ORDER BY longest_gap_min DESC NULLS LAST, sensor_id
    """
    return _frame(config, sql, ("readings",))


GAP_COLUMNS = {"sensor_id": "meter", "readings": "readings", "median_spacing_s": "typical spacing",
               "longest_gap_min": "longest gap", "gap_from": "from", "gap_to": "to"}


def style_gaps(gaps: pd.DataFrame, rows: int = 5):
    """The meters with the longest gaps, as a small table with units."""
    shown = gaps.head(rows).rename(columns=GAP_COLUMNS)
    return shown.style.hide(axis="index").format(
        {"typical spacing": "{:.0f} s", "longest gap": "{:.1f} min",
         "from": wall_clock, "to": wall_clock}, na_rep="-", escape="html")


def bands_match_q4(bands: pd.DataFrame, q4: pd.DataFrame) -> float:
    """The largest difference (€) between a meter's band split and its Q4 cost."""
    joined = pd.DataFrame({"bands": bands.sum(axis=1),
                           "q4": q4.set_index("sensor_id")["cost_eur"]}).fillna(0.0)
    return float((joined["bands"] - joined["q4"]).abs().max()) if len(joined) else 0.0


# --------------------------------------------------------------------------- plots

# Meter ids are untrusted text: drawn with mathtext off, a "$" in an id stays a dollar sign.
LITERAL_TEXT = {"text.parse_math": False}
BAND_COLOURS = ("#c0392b", "#e67e22", "#2e86c1", "#1b4f72", "#7f8c8d", "#16a085")


class ReportFigure(Figure):
    """A matplotlib Figure that a notebook shows as an inline PNG with alt text.

    The PNG is embedded as base64 (the exported HTML needs no image files) and
    the alt text is `alt`, or the titles of the axes.
    """

    alt = ""

    def to_png(self, dpi: int = 110) -> bytes:
        buffer = io.BytesIO()
        with rc_context(LITERAL_TEXT):  # the tick labels (ids) are made while drawing
            self.savefig(buffer, format="png", dpi=dpi, facecolor="white")
        return buffer.getvalue()

    def alt_text(self) -> str:
        titles = [ax.get_title() for ax in self.axes if ax.get_title()]
        return self.alt or "; ".join(titles) or "chart"

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.to_png()).decode("ascii")
        return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt_text())}" '
                'style="max-width: 100%; height: auto">')


def _figure(width: float, height: float) -> tuple[ReportFigure, Axes]:
    fig = ReportFigure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _stacked_legend(ax: Axes, **kwargs) -> None:
    """A legend listed in the order the stack is drawn, top first."""
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], **kwargs)


def _bar_labels(ax: Axes, bars, fmt: str) -> None:
    ax.bar_label(bars, fmt=fmt, padding=2, fontsize=8, color="#333")
    ax.margins(y=0.12)


def plot_pipeline(rows: Mapping[str, int] | None = None, topic: str = "energy") -> Figure:
    """The data flow Kafka -> bronze -> silver -> gold -> DuckDB, with row counts if given."""
    rows = rows or {}
    fig = ReportFigure(figsize=(11, 4.2), dpi=100)
    fig.alt = ("Pipeline diagram: Kafka to bronze (raw messages), to silver (readings, "
               "consumption pieces, quarantine), to the four gold tables, read by DuckDB")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 4.2)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, title: str, body: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04,rounding_size=0.12",
                                    facecolor=colour, edgecolor="#333", linewidth=1))
        ax.text(x + w / 2, y + h - 0.18, title, ha="center", va="top", fontsize=10,
                fontweight="bold")
        ax.text(x + w / 2, y + h - 0.48, body, ha="center", va="top", fontsize=8, linespacing=1.3)

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": "#333", "lw": 1.3})

    def count(table: str) -> str:
        return f"{rows[table]:,} rows" if table in rows else ""

    box(0.1, 1.5, 1.5, 1.2, "Kafka", f"topic {topic}\nJSON readings\nkeyed or not", "#eeeeee")
    box(2.1, 1.5, 1.7, 1.2, "bronze", f"every message as-is\nbytes + offsets\n{count('bronze')}",
        "#e8c39e")
    box(4.4, 2.75, 2.0, 1.2, "silver: readings",
        f"accepted readings\n{count('readings')}", "#d5d8dc")
    box(4.4, 1.5, 2.0, 1.2, "silver: pieces",
        f"kWh per half hour\nband, price, € (± retractions)\n{count('silver')}", "#d5d8dc")
    box(4.4, 0.25, 2.0, 1.2, "silver: quarantine",
        f"rejected + anomalies\nwith a reason code\n{count('quarantine')}", "#f5b7b1")
    gold = "\n".join(f"{t}  {count(t)}".rstrip() for t in LAYER_TABLES["gold"])
    box(7.0, 1.3, 2.3, 1.6, "gold (by partition)", gold, "#f9e79f")
    box(9.7, 1.5, 1.2, 1.2, "DuckDB", "views q1..q4\nsql, history\ntime travel", "#d4efdf")
    arrow(1.6, 2.1, 2.1, 2.1)
    arrow(3.8, 2.3, 4.4, 3.3)
    arrow(3.8, 2.1, 4.4, 2.1)
    arrow(3.8, 1.9, 4.4, 0.85)
    arrow(6.4, 2.1, 7.0, 2.1)
    arrow(9.3, 2.1, 9.7, 2.1)
    ax.text(5.5, 0.05, "Spark Structured Streaming: bronze and silver every 10 s, gold "
            "(all the answers) every minute; Delta tables under the lake folder",
            ha="center", va="bottom", fontsize=8, color="#555", transform=ax.transData,
            wrap=True)
    return fig


def plot_month_kwh(q1: pd.DataFrame, title: str = "Month to date") -> Figure:
    """q1 as bars, largest first."""
    fig, ax = _figure(9, 3.8)
    ax.set_title(f"{title}: kWh per meter")
    if q1.empty:
        _empty(ax, "no energy this month")
        return fig
    frame = q1.sort_values(["energy_kwh", "sensor_id"], ascending=False)
    bars = ax.bar(frame["sensor_id"].astype(str), frame["energy_kwh"], color="#2e86c1")
    _bar_labels(ax, bars, "%.0f" if frame["energy_kwh"].max() >= 100 else "%.1f")
    ax.set_xlabel("meter")
    ax.set_ylabel("energy (kWh)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def plot_cost_by_band(bands: pd.DataFrame, title: str = "Today") -> Figure:
    """Stacked bars: each meter's cost today, one colour per tariff band."""
    fig, ax = _figure(9, 4.2)
    ax.set_title(f"{title}: cost per meter by tariff band (energy term only, no VAT)")
    if bands.empty:
        _empty(ax, "no consumption today")
        return fig
    prices = bands.attrs.get("prices", {})
    bottom = np.zeros(len(bands))
    sensors = [str(s) for s in bands.index]
    for i, band in enumerate(bands.columns):
        values = bands[band].to_numpy(dtype=float)
        label = band.replace("_", " ")
        if band in prices:
            label += f" ({prices[band]:.4f} €/kWh)"
        ax.bar(sensors, values, bottom=bottom, label=label,
               color=BAND_COLOURS[i % len(BAND_COLOURS)])
        bottom += values
    for x, total in enumerate(bottom):
        ax.text(x, total, f"{total:.2f}", ha="center", va="bottom", fontsize=8, color="#333")
    ax.margins(y=0.12)
    ax.set_xlabel("meter")
    ax.set_ylabel("cost (€)")
    _stacked_legend(ax, title="band", fontsize=8, title_fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def plot_halfhour_heatmap(matrix: pd.DataFrame, title: str = "Today") -> Figure:
    """Meters (rows) by half hours (columns), colour = kWh; blank where a meter has nothing."""
    fig, ax = _figure(11, max(2.5, 0.32 * len(matrix) + 1.6))
    ax.set_title(f"{title}: kWh per meter and half hour")
    if matrix.empty:
        _empty(ax, "no half hours today")
        return fig
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    image = ax.imshow(values, aspect="auto", cmap="YlOrRd", interpolation="nearest")
    columns = list(matrix.columns)
    step = max(1, len(columns) // 12)
    ticks = list(range(0, len(columns), step))
    ax.set_xticks(ticks, [columns[i] for i in ticks], rotation=0, fontsize=8)
    ax.set_yticks(range(len(matrix)), [str(s) for s in matrix.index], fontsize=8)
    ax.set_xlabel("half hour starting at (local time)")
    ax.set_ylabel("meter")
    fig.colorbar(image, ax=ax, label="kWh per half hour", pad=0.01)
    return fig


def plot_answer_by_version(by_version: pd.DataFrame, unit: str = "€",
                           title: str = "Today's cost") -> Figure:
    """The answer at each Delta version: one stacked bar per version, one colour per meter."""
    fig, ax = _figure(11, 4.4)
    ax.set_title(f"{title} as each version of the table answered it")
    data = by_version.dropna(subset=["sensor_id"])
    if data.empty:
        _empty(ax, "no versions with data")
        return fig
    versions = sorted(by_version["version"].unique())
    wide = (data.pivot_table(index="version", columns="sensor_id", values="value",
                             aggfunc="sum").reindex(versions).fillna(0.0))
    wide = wide[sorted(wide.columns)]
    positions = np.arange(len(versions))
    bottom = np.zeros(len(versions))
    palette = colormaps["tab10" if len(wide.columns) <= 10 else "tab20"].colors
    for i, sensor in enumerate(wide.columns):
        values = wide[sensor].to_numpy(dtype=float)
        ax.bar(positions, values, bottom=bottom, label=str(sensor),
               color=palette[i % len(palette)], width=0.7)
        bottom += values
    pad = max(0.0, (6 - len(versions)) / 2)
    ax.set_xlim(-0.6 - pad, len(versions) - 0.4 + pad)
    nows = by_version.groupby("version")["now"].first().reindex(versions)
    labels = [
        f"v{v}\n{wall_clock(now)[5:]}" if isinstance(now, pd.Timestamp)
        else f"v{v}\n(empty)"
        for v, now in zip(versions, nows, strict=True)
    ]
    step = max(1, len(versions) // 14)
    ax.set_xticks(positions[::step], labels[::step], fontsize=7)
    ax.set_xlabel('Delta version of the gold table, and the "now" (latest reading) it answers for')
    ax.set_ylabel(f"total ({unit})")
    _stacked_legend(ax, title="meter", fontsize=7, title_fontsize=8,
                    ncol=1 + len(wide.columns) // 16, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def plot_quarantine_reasons(reasons: pd.DataFrame) -> Figure:
    """Horizontal bars: quarantine rows per reason code, most frequent on top."""
    fig, ax = _figure(8, max(2.2, 0.4 * len(reasons) + 1.2))
    ax.set_title("Quarantine: messages per reason code")
    if reasons.empty:
        _empty(ax, "nothing quarantined")
        return fig
    frame = reasons.sort_values(["messages", "reason"], ascending=[True, False])
    bars = ax.barh(frame["reason"], frame["messages"], color="#c0392b")
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.margins(x=0.12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("messages")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def plot_readings_per_day(per_day: pd.DataFrame) -> Figure:
    """Heatmap of accepted readings per meter and day; the numbers written in when few days."""
    width = min(11.0, max(6.0, 0.45 * per_day.shape[1] + 3))
    fig, ax = _figure(width, max(2.5, 0.32 * len(per_day) + 1.6))
    ax.set_title("Accepted readings per meter and day")
    if per_day.empty:
        _empty(ax, "no readings")
        return fig
    values = per_day.to_numpy(dtype=float)
    # From 0, so that a day with half its readings looks half as full.
    image = ax.imshow(values, aspect="auto", cmap="Blues", interpolation="nearest", vmin=0,
                      vmax=max(float(values.max()), 1.0))
    ax.set_yticks(range(len(per_day)), [str(s) for s in per_day.index], fontsize=8)
    days = list(per_day.columns)
    ax.set_xticks(range(len(days)), [d[5:] for d in days], rotation=90 if len(days) > 8 else 0,
                  fontsize=8)
    if values.size <= 160:
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if image.norm(v) > 0.55 else "#222")
    ax.set_xlabel("day (local, MM-DD)")
    ax.set_ylabel("meter")
    fig.colorbar(image, ax=ax, label="readings", pad=0.01)
    return fig


def plot_longest_gaps(gaps: pd.DataFrame) -> Figure:
    """Horizontal bars: the longest silence of each meter, in minutes, longest on top."""
    fig, ax = _figure(8, max(2.5, 0.32 * len(gaps) + 1.4))
    ax.set_title("Longest gap between readings, per meter")
    data = gaps.dropna(subset=["longest_gap_min"])
    if data.empty:
        _empty(ax, "no meter has two readings")
        return fig
    frame = data.sort_values(["longest_gap_min", "sensor_id"], ascending=[True, False])
    bars = ax.barh(frame["sensor_id"].astype(str), frame["longest_gap_min"], color="#7d3c98")
    ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.margins(x=0.12)
    typical = float(data["median_spacing_s"].median()) / 60.0
    ax.axvline(typical, color="#555", linestyle="--", linewidth=1,
               label=f"typical spacing ({typical:.1f} min)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("longest gap between consecutive readings (minutes)")
    ax.set_ylabel("meter")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


# --------------------------------------------------------------------------- rendering


def _kernel_manager(kernels: Path):
    """A kernel manager whose `python3` is this very interpreter (the project's venv).

    The spec is written into a private folder, so neither a user-wide kernelspec
    nor another Python on PATH can be picked up by accident.
    """
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    write_kernel_spec(kernels / KERNEL_NAME)
    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    # Talk to the kernel over Unix sockets in the same private folder, not TCP.
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs, transport="ipc",
                         ip=str(kernels / "ipc"))


def execute_notebook(
    lake: Path, notebook: Path = NOTEBOOK, timeout: int = 600
) -> nbformat.NotebookNode:
    """Run the notebook top to bottom on a fresh kernel against `lake`; the executed notebook.

    Raises nbclient's CellExecutionError (with the failing cell's traceback) on
    any error in a cell.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    env = {**os.environ, "METERLAKE_LAKE": str(lake)}
    with tempfile.TemporaryDirectory(prefix="meterlake-kernel-") as kernels:
        km = _kernel_manager(Path(kernels))
        client = NotebookClient(
            nb,
            km=km,
            kernel_name=KERNEL_NAME,
            timeout=timeout,
            resources={"metadata": {"path": str(notebook.parent)}},
        )
        try:
            # cleanup_kc: nbclient shuts the kernel down and closes its channels even
            # though the kernel manager is ours (by default it would leave it running).
            client.execute(env=env, cleanup_kc=True)
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


# Lab's HTML without the scripts it would fetch from a CDN (require.js, MathJax,
# mermaid): the report has no widgets, formulas or diagrams in JS, so the page
# is complete offline. Images are inline PNG (base64) already.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(nb: nbformat.NotebookNode, title: str = "meterlake energy report") -> str:
    """A self-contained HTML page of an executed notebook (no prompts, no CDN scripts)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"meterlake_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="meterlake_offline.html.j2",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def render_report(
    lake: Location, out: Path, notebook: Path = NOTEBOOK, timeout: int = 600
) -> Path:
    """Execute the report notebook against `lake` and write it as one HTML file to `out`."""
    config = lake_config(lake)
    require_lake(config)
    nb = execute_notebook(config.lake, notebook, timeout)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_html(nb), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meterlake.read.report",
        description="Run notebooks/energy_report.ipynb against a lake and export it as HTML.",
    )
    parser.add_argument("--lake", help="root of the Delta tables, from the working directory "
                                       "(default: $METERLAKE_LAKE, else the conf file's)")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help=f"HTML file (default {DEFAULT_OUT})")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from nbclient.exceptions import CellExecutionError

    try:
        config = load_config(options={"lake.root": args.lake})
        if on_object_store(config.lake):
            export(config.storage)  # delta-rs here and in the notebook's kernel
        lake = config.lake
        out = render_report(lake, Path(args.out), timeout=args.timeout)
    except MeterlakeError as exc:
        print(f"meterlake report: {exc}", file=sys.stderr)
        return 2
    except CellExecutionError as exc:
        print(f"meterlake report: a notebook cell failed:\n{exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
