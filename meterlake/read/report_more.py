"""The report's sections beyond the four answers (notebooks/energy_report.ipynb): plans
compared, the bill so far beside the month ahead, meter health.

Frames come from the very views `meterlake query plans|bill|health|projection` prints
(meterlake.read.questions, meterlake.read.projection), regrouped per meter by
meterlake.read.summaries as on the page; nothing is recomputed here.

Meter ids are untrusted text: tables escape them as HTML (`style_*`), charts draw them
with mathtext off (a `$` stays a dollar sign) and shortened to `ID_CHARS`, each at its
own position, so two ids that shorten alike are still two bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import rc_context

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.clock import wall_clock
from meterlake.read.more_views import MORE_VIEW_TABLES
from meterlake.read.projection import query_projection
from meterlake.read.questions import query_more
from meterlake.read.report import LITERAL_TEXT, ReportFigure, _empty, _figure, _present
from meterlake.read.summaries import bill_ahead, plan_savings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from pandas.io.formats.style import Styler

ID_CHARS = 20  # as on the page (meterlake/app/page/ids.js)


def id_label(sensor: object) -> str:
    """A meter id shortened for a chart: its first ID_CHARS - 1 characters and an ellipsis."""
    text = str(sensor)
    return text if len(text) <= ID_CHARS else text[: ID_CHARS - 1] + "…"


def has_tables(config: Config, view: str) -> bool:
    """Whether the lake has every table of `view` (a lake from before month_plan_cost
    is still reported on, without plans and bill)."""
    return all(_present(config, table) for table in MORE_VIEW_TABLES[view])


def savings(config: Config) -> pd.DataFrame:
    """Each meter's contract, the cheapest plan, and the saving; the largest first."""
    return plan_savings(query_more(config, "plans")).to_pandas()


def bill_and_month_ahead(config: Config) -> pd.DataFrame:
    """The bill so far per meter (`query bill`) with its projection (`query projection`)."""
    try:
        projection = query_projection(config)
    except MeterlakeError:  # no half hours to project from: the bill alone
        projection = None
    return bill_ahead(query_more(config, "bill"), projection).to_pandas()


def health(config: Config) -> pd.DataFrame:
    """`query health`: silent meters first, the latest reading in local time."""
    frame = query_more(config, "health").to_pandas()
    zone = config.semantics.zone
    frame["last_reading"] = [wall_clock(pd.Timestamp(t).tz_convert(zone)) for t in
                             frame["last_reading"]]  # fmt: skip
    return frame


def _escaped(frame: pd.DataFrame, formats: dict[str, str]) -> Styler:
    return (frame.style.hide(axis="index").format(formats, na_rep="-", escape="html")
            .format_index(escape="html", axis=1))  # fmt: skip


def style_savings(frame: pd.DataFrame) -> Styler:
    shown = frame.rename(columns={"sensor_id": "meter", "contract_eur": "contract €",
                                  "cheapest_eur": "cheapest €", "saving_eur": "saving €"})
    return _escaped(shown, {c: "{:.4f}" for c in ("contract €", "cheapest €", "saving €")})


def style_bill(frame: pd.DataFrame) -> Styler:
    money = [c for c in frame.columns if c.endswith("_eur")]
    formats = {**{c: "{:.2f}" for c in money}, "energy_kwh": "{:.1f}", "kwh_projected": "{:.1f}",
               "vat_reduced_kwh": "{:.1f}"}  # fmt: skip
    return _escaped(frame.rename(columns={"sensor_id": "meter"}), formats)


def style_health(frame: pd.DataFrame) -> Styler:
    """Silent meters stand out (a red row)."""
    shown = frame.rename(columns={"sensor_id": "meter"})
    styled = _escaped(shown, {"cadence_s": "{:.0f} s", "longest_gap_today_s": "{:.0f} s"})
    return styled.apply(lambda row: ["background: #fde2e1; font-weight: 600" if row["silent"]
                                     else "" for _ in row], axis=1)  # fmt: skip


def _meter_axis(ax: Axes, frame: pd.DataFrame, ylabel: str) -> None:
    """One tick per meter at its own position, its id shortened; the y label and grid."""
    ax.set_xticks(np.arange(len(frame)), [id_label(s) for s in frame["sensor_id"]],
                  rotation=30, ha="right", fontsize=8)  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def plot_savings(frame: pd.DataFrame) -> ReportFigure:
    """Bars: what each meter would have saved this month on its cheapest plan."""
    with rc_context(LITERAL_TEXT):
        fig, ax = _figure(9, 3.8)
        ax.set_title("This month so far: saving of the cheapest plan against the contract")
        if frame.empty:
            _empty(ax, "no plan costs this month")
            return fig
        ax.bar(np.arange(len(frame)), frame["saving_eur"], color="#2a9d8f")
        _meter_axis(ax, frame, "€ saved (energy term)")
    return fig


def plot_bill(frame: pd.DataFrame) -> ReportFigure:
    """Stacked bars of the bill so far (energy, power, VAT) and a marker at the energy
    term projected to the end of the month."""
    with rc_context(LITERAL_TEXT):
        fig, ax = _figure(9, 4.0)
        ax.set_title("The bill so far, and the energy term projected to the end of the month")
        if frame.empty:
            _empty(ax, "no bill this month")
            return fig
        positions = np.arange(len(frame))
        bottom = np.zeros(len(frame))
        for column, label, colour in (("energy_eur", "energy", "#457b9d"),
                                      ("power_eur", "power", "#a8dadc"),
                                      ("vat_eur", "VAT", "#e9c46a")):  # fmt: skip
            values = frame[column].to_numpy(dtype=float)
            ax.bar(positions, values, bottom=bottom, label=label, color=colour)
            bottom += values
        ax.scatter(positions, frame["cost_projected_eur"].to_numpy(dtype=float), marker="D",
                   color="#e76f51", zorder=3, label="energy term, projected")  # fmt: skip
        _meter_axis(ax, frame, "€ this month")
        ax.legend(fontsize=8, loc="upper right")
    return fig
