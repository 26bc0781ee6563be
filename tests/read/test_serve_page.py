"""The page of `meterlake serve` in a real browser, over a lake the real pipeline wrote.

Readings go through the real broker and Spark (bronze -> silver -> gold); the
server runs in this process; headless Chromium (tests/browser.py) opens the
page. What the page shows is read from the DOM (each number also carries its
full-precision value in `data-value`) and compared with the oracle
(`oracle/`) computed from the same readings. The page must:

- render the four answers (Q4 split by tariff band) and their as_of;
- show a reading published afterwards, once the pipeline ran it, with no reload;
- travel back to the gold versions before that reading (by a moment of the
  timeline, and by the event time before it), and return to live;
- play a day replayed in hourly steps moment by moment, each as the data stood then;
- log no console error.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from deltalake import DeltaTable
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from meterlake.app.pipeline import run_once
from meterlake.app.replay import replay
from meterlake.app.web import running
from meterlake.core.catalog import GOLD_TABLES
from meterlake.core.net import free_port
from meterlake.read.clock import wall_clock
from meterlake.tools.publish import publish_readings
from oracle import OracleResult, compute_answers
from tests.browser import chromium, console_errors
from tests.helpers import TOLERANCE, quiet

LAYERS = ["bronze", "silver", "gold"]
WAIT_S = 120  # the longest a page may take to show what gold holds (it polls each second)


def readings() -> list[str]:
    """Three meters on 2024-02-10 (and one the evening before), every 10 minutes from
    06:00 to 12:00 local time: across the vazio/cheias/ponta boundaries of 08:00 and 09:00."""
    lines = ["2024-02-09 23:50:00;A;999.9"]
    for i in range(37):
        ts = f"2024-02-10 {6 + i // 6:02d}:{i % 6 * 10:02d}:00"
        lines += [f"{ts};A;{1000 + 0.05 * i:.3f}", f"{ts};B;{250 + 0.02 * i + 0.001 * i * i:.3f}",
                  f"{ts};C;{40 + 0.08 * i:.3f}"]
    return lines


NEW_READING = "2024-02-10 12:30:00;A;1002.200"  # A used 0.4 kWh in the last half hour

# What the page shows, from the DOM.
READ_PAGE = """
const rows = (view) => [...document.querySelectorAll(`#${view} tbody tr`)];
const bands = (tr) => Object.fromEntries([...tr.querySelectorAll("td[data-band]")]
    .map((td) => [td.dataset.band, Number(td.dataset.value)]));
return {
  mode: document.body.dataset.mode,
  moment: document.getElementById("mode").textContent,
  shown: document.body.dataset.shown ? JSON.parse(document.body.dataset.shown) : null,
  q1: rows("q1").map((tr) => [tr.dataset.sensor, Number(tr.dataset.value)]),
  q2: rows("q2").map((tr) => [tr.dataset.sensor, Number(tr.dataset.value)]),
  q4: rows("q4").map((tr) => [tr.dataset.sensor, Number(tr.dataset.value), bands(tr)]),
  q3_sensors: [...document.querySelectorAll("#q3-table thead th")].slice(1)
      .map((th) => th.textContent),
  q3: rows("q3").map((tr) => [tr.dataset.period, [...tr.querySelectorAll("td[data-sensor]")]
      .map((td) => td.dataset.value === "" ? null : Number(td.dataset.value))]),
  as_of: Object.fromEntries(["q1", "q2", "q3", "q4"].map((v) =>
      [v, document.querySelector(`#${v} .as-of`).dataset.asOf])),
  traces: (document.getElementById("q3-chart").data || []).length,
};
"""


def page(browser) -> dict[str, Any]:
    return browser.execute_script(READ_PAGE)


def gold_versions(config) -> dict[str, int]:
    return {t: DeltaTable(str(config.table_path(t))).version() for t in GOLD_TABLES}


def showing(browser, versions: dict[str, int] | None, mode: str, moment: str | None = None,
            wait_s: float = WAIT_S) -> dict[str, Any]:
    """Wait until the page shows these gold versions (None: any) in this mode (and this
    moment, the line that says which); what it shows then, read at once (a playing page
    moves on)."""
    return WebDriverWait(browser, wait_s, poll_frequency=0.1).until(
        lambda b: (lambda p: versions in (None, p["shown"]) and p["mode"] == mode
                   and moment in (None, p["moment"]) and p)(page(b)),
        f"the page did not show {versions or 'versions'} ({mode} {moment or ''})",
    )


def band_split(oracle: OracleResult, zone: ZoneInfo) -> dict[str, dict[str, float]]:
    """The oracle's cost per sensor and band over today's pieces."""
    today = oracle.now.tz_convert(zone).date()
    pieces = oracle.pieces[oracle.pieces["day"].map(lambda d: pd.Timestamp(d).date()) == today]
    split: dict[str, dict[str, float]] = {}
    for (sensor, band), cost in pieces.groupby(["sensor_id", "band"])["cost_eur"].sum().items():
        split.setdefault(sensor, {})[band] = cost
    return split


def assert_page_equals_oracle(shown: dict[str, Any], oracle: OracleResult, zone: ZoneInfo):
    for view in ("q1", "q2", "q4"):
        want = getattr(oracle, view)
        assert [row[0] for row in shown[view]] == list(want.iloc[:, 0]), view
        assert [row[1] for row in shown[view]] == pytest.approx(
            list(want.iloc[:, 1]), abs=TOLERANCE), view
    split = band_split(oracle, zone)
    for sensor, _, bands in shown["q4"]:
        want = {b: v for b, v in split.get(sensor, {}).items() if v}
        assert {b: v for b, v in bands.items() if v} == pytest.approx(want, abs=TOLERANCE)
    sensors = list(oracle.q3.columns[1:])
    assert shown["q3_sensors"] == sensors and shown["traces"] == len(sensors)
    periods = [wall_clock(p.to_pydatetime(), zone) for p in oracle.q3["period_start"]]
    assert [period for period, _ in shown["q3"]] == periods
    for (period, values), (_, want) in zip(shown["q3"], oracle.q3.iterrows(), strict=True):
        expected = [None if pd.isna(want[s]) else float(want[s]) for s in sensors]
        assert [v is None for v in values] == [v is None for v in expected], period
        assert [v or 0.0 for v in values] == pytest.approx(
            [v or 0.0 for v in expected], abs=TOLERANCE), period
    now = wall_clock(oracle.now.to_pydatetime(), zone)
    assert shown["as_of"]["q1"] == now and shown["as_of"]["q4"] == now


def test_the_page_shows_the_oracles_answers_live_and_back_in_time(
    spark, kafka, config, tmp_path: Path
) -> None:
    zone = ZoneInfo(config.semantics.zone)
    first = readings()
    (tmp_path / "first.csv").write_text("\n".join(first) + "\n")
    (tmp_path / "all.csv").write_text("\n".join([*first, NEW_READING]) + "\n")
    before = compute_answers(tmp_path / "first.csv", config.semantics)
    after = compute_answers(tmp_path / "all.csv", config.semantics)
    # the new reading changes every answer, and the order of Q1
    assert list(before.q1.sensor_id) != list(after.q1.sensor_id)
    assert before.now.date() == after.now.date() == date(2024, 2, 10)

    publish_readings(config, first, speedup=0, progress=False)
    run_once(spark, config, LAYERS, echo=quiet)
    first_versions = gold_versions(config)

    with running(config, "127.0.0.1", free_port()) as url, chromium() as browser:
        browser.get(url)
        assert_page_equals_oracle(showing(browser, first_versions, "live"), before, zone)

        # a new reading through Kafka and the pipeline; the open page catches up by itself
        browser.execute_script("window.notReloaded = true;")
        publish_readings(config, [NEW_READING], speedup=0, progress=False)
        run_once(spark, config, LAYERS, echo=quiet)
        live_versions = gold_versions(config)
        assert live_versions != first_versions
        assert_page_equals_oracle(showing(browser, live_versions, "live"), after, zone)
        assert browser.execute_script("return window.notReloaded === true;")

        # travel to the last gold commit before the new reading: the earlier numbers
        moment = browser.find_element(By.ID, "travel-moment")
        WebDriverWait(browser, WAIT_S).until(
            lambda b: any(o.get_attribute("value") for o in Select(moment).options))
        earlier = [
            o.get_attribute("value") for o in Select(moment).options
            if o.get_attribute("data-versions")
            and _versions(o.get_attribute("data-versions")) == first_versions
        ]
        assert len(earlier) == 1
        Select(moment).select_by_value(earlier[0])
        assert_page_equals_oracle(showing(browser, first_versions, "travel"), before, zone)

        browser.find_element(By.ID, "travel-live").click()
        assert_page_equals_oracle(showing(browser, live_versions, "live"), after, zone)

        # the answers as the data stood at an event time before the new reading (12:30)
        Select(browser.find_element(By.ID, "travel-kind")).select_by_value("at")
        browser.find_element(By.ID, "travel-time").send_keys("2024-02-10 12:15")
        browser.find_element(By.ID, "travel-go").click()
        assert_page_equals_oracle(showing(browser, first_versions, "travel"), before, zone)
        browser.find_element(By.ID, "travel-live").click()
        showing(browser, live_versions, "live")
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
        assert console_errors(browser) == []


def _versions(text: str) -> dict[str, int]:
    import json

    return {k: int(v) for k, v in json.loads(text).items()}


def day_in_ten_minutes() -> list[str]:
    """Two meters on 2024-02-10, every 10 minutes from 04:00 to 19:50: A uses more from
    08:00, B the same all day."""
    lines = []
    for i in range(4 * 6, 20 * 6):
        ts = f"2024-02-10 {i // 6:02d}:{i % 6 * 10:02d}:00"
        a = 0.02 * i + 0.03 * max(i - 48, 0)
        lines += [f"{ts};A;{1000 + a:.3f}", f"{ts};B;{250 + 0.025 * i:.3f}"]
    return lines


PLAY_WAIT_S = 60  # 16 hourly moments play in about 16 x 0.8 s


def test_play_runs_a_day_replayed_in_hourly_steps_as_the_data_stood(
    spark, kafka, config, tmp_path: Path
) -> None:
    """`replay --step 1h` of a day's 16 hours: the timeline has one moment per hour (its
    latest reading, :50), and play shows them in turn: at 06:00 and 18:00 the page's Q2 is the
    oracle's over the readings before then, in the versions the timeline names."""
    lines = day_in_ten_minutes()
    (tmp_path / "day.csv").write_text("\n".join(lines) + "\n")
    oracles = {}
    for hour in (6, 18):
        before = tmp_path / f"before_{hour}.csv"
        before.write_text("\n".join(x for x in lines if x < f"2024-02-10 {hour:02d}") + "\n")
        oracles[f"2024-02-10 {hour - 1:02d}:50"] = compute_answers(before, config.semantics).q2
    replay(config, tmp_path / "day.csv", echo=quiet, step=timedelta(hours=1))
    live = gold_versions(config)

    with running(config, "127.0.0.1", free_port()) as url, chromium() as browser:
        browser.get(url)
        showing(browser, live, "live")
        moments = {o.text: _versions(o.get_attribute("data-versions"))
                   for o in Select(browser.find_element(By.ID, "travel-moment")).options
                   if o.get_attribute("value")}
        assert sorted(moments) == [f"2024-02-10 {h:02d}:50" for h in range(4, 20)]
        assert moments["2024-02-10 19:50"] == live

        browser.find_element(By.ID, "travel-play").click()
        for moment, want in oracles.items():
            shown = showing(browser, None, "travel", f"data at {moment}", PLAY_WAIT_S)
            assert shown["shown"] == moments[moment]
            assert shown["as_of"]["q2"] == moment
            assert [row[0] for row in shown["q2"]] == list(want.sensor_id), moment
            assert [row[1] for row in shown["q2"]] == pytest.approx(
                list(want.energy_kwh), abs=TOLERANCE), moment
        WebDriverWait(browser, PLAY_WAIT_S).until(
            lambda b: b.find_element(By.ID, "travel-play").text == "play", "play did not end")
        showing(browser, live, "travel", "data at 2024-02-10 19:50")
        assert console_errors(browser) == []


# --------------------------------------------------------------------------- the panels
# Meter ids are untrusted text: plotly would read these as its own markup (a bold
# "bold", a link "click"); the long one is the longest id silver accepts (64
# characters), the 200-character one is quarantined (bad_sensor_id) and shown nowhere.
BOLD = "<b>bold</b>"
LINK = '<a href="javascript:alert(1)">click</a>'
LONG = ("long-meter-" + "0123456789" * 6)[:64]
TOO_LONG = "x" * 200
SILENT = "S"  # reports from 06:00 to 08:00 only: silent at noon (4 x its 10-minute cadence)
ID_CHARS = 20  # meterlake/app/page/ids.js: ids longer than this are shortened


def shortened(sensor: str) -> str:
    return sensor if len(sensor) <= ID_CHARS else sensor[:ID_CHARS - 1] + "…"


def hostile_readings() -> list[str]:
    """2024-02-10, every 10 minutes from 06:00 to 12:00: three meters with hostile ids,
    one that stops at 08:00, and one whose id is too long."""
    lines = [f"2024-02-09 23:50:00;{BOLD};500.0"]
    for i in range(37):
        ts = f"2024-02-10 {6 + i // 6:02d}:{i % 6 * 10:02d}:00"
        lines += [f"{ts};{BOLD};{500 + 0.03 * i:.3f}", f"{ts};{LINK};{70 + 0.05 * i:.3f}",
                  f"{ts};{LONG};{12 + 0.011 * i * i / 10:.4f}"]
        if i <= 12:
            lines.append(f"{ts};{SILENT};{300 + 0.2 * i:.3f}")
    return [*lines, f"2024-02-10 09:00:00;{TOO_LONG};1.0"]


READ_PANELS = """
const cells = (view) => [...document.querySelectorAll(`#${view} tbody tr`)].map((tr) => ({
  sensor: tr.dataset.sensor, silent: tr.dataset.silent,
  id: tr.querySelector("span.id").textContent, title: tr.querySelector("span.id").title,
  width: tr.querySelector("span.id").getBoundingClientRect().width,
  values: Object.fromEntries([...tr.querySelectorAll("td[data-column]")].map((td) =>
      [td.dataset.column, td.dataset.value === undefined ? td.textContent : td.dataset.value])),
  badge: (tr.querySelector(".badge") || {}).textContent,
}));
const texts = (selector) => [...document.querySelectorAll(selector)].map((t) => t.textContent);
const styled = [...document.querySelectorAll("main svg text, main svg tspan")]
    .filter((t) => /bold|italic/.test(t.getAttribute("style") || ""));
return {
  ready: ["plans", "bill", "health"].every((v) =>
      document.getElementById(v).dataset.state === "ready"),
  plans: cells("plans"), bill: cells("bill"), health: cells("health"),
  q1: cells("q1"), q4: cells("q4"),
  alert: document.querySelector("#health .alert").hidden ? null
      : document.querySelector("#health .alert").textContent,
  q3_heads: [...document.querySelectorAll("#q3-table thead th span.id")].map((s) =>
      [s.textContent, s.title, s.getBoundingClientRect().width]),
  legend: texts("#q3-chart .legendtext"),
  ticks: Object.fromEntries(["q4", "plans", "bill"].map((v) =>
      [v, texts(`#${v}-chart .xtick text`)])),
  injected: document.querySelectorAll("main a, main b, main svg a").length + styled.length,
  errors: [...document.querySelectorAll(".panel-error")].filter((p) => !p.hidden)
      .map((p) => p.textContent),
};
"""

HOVER = """
const [chart, curve, point] = arguments;
Plotly.Fx.hover(chart, [{curveNumber: curve, pointNumber: point}]);
return [...document.querySelectorAll(`#${chart} .hoverlayer .hovertext`)]
    .map((t) => t.textContent).join(" | ");
"""


def test_the_panels_show_the_oracles_plans_bill_and_health_and_ids_as_text(
    spark, kafka, config, tmp_path: Path
) -> None:
    zone = ZoneInfo(config.semantics.zone)
    lines = hostile_readings()
    (tmp_path / "hostile.csv").write_text("\n".join(lines) + "\n")
    oracle = compute_answers(tmp_path / "hostile.csv", config.semantics)
    assert oracle.quarantine_counts.get("bad_sensor_id") == 1
    publish_readings(config, lines, speedup=0, progress=False)
    run_once(spark, config, LAYERS, echo=quiet)
    meters = sorted([BOLD, LINK, LONG, SILENT])
    assert sorted(oracle.q1.sensor_id) == meters

    with running(config, "127.0.0.1", free_port()) as url, chromium() as browser:
        browser.get(url)
        showing(browser, gold_versions(config), "live")
        WebDriverWait(browser, WAIT_S, poll_frequency=0.25).until(
            lambda b: b.execute_script(READ_PANELS)["ready"], "the panels were not drawn")
        shown = browser.execute_script(READ_PANELS)

        # plans: each meter's contract, the cheapest plan and the saving, as the oracle's
        plans = oracle.plans
        want = {}
        for sensor, mine in plans.groupby("sensor_id", sort=False):
            cheapest, contract = mine.iloc[0], mine[mine.contracted].iloc[0]
            want[sensor] = (contract.plan, contract.cost_eur, cheapest.plan, cheapest.cost_eur,
                            cheapest.saving_eur)
        got = {row["sensor"]: row["values"] for row in shown["plans"]}
        assert sorted(got) == meters
        for sensor, (plan, cost, best, best_cost, saving) in want.items():
            row = got[sensor]
            assert (row["contract"], row["cheapest"]) == (plan, best), sensor
            assert [float(row[c]) for c in ("contract_eur", "cheapest_eur", "saving_eur")] == \
                pytest.approx([cost, best_cost, saving], abs=TOLERANCE), sensor
        savings = [want[row["sensor"]][4] for row in shown["plans"]]
        assert savings == sorted(savings, reverse=True)

        # the bill: the contract's month (the oracle's), 10 days of 6.9 kVA at 0.33 EUR,
        # VAT: every kWh under 200 x 10 / 30, so 6 % on energy; 23 % on the power term
        month = dict(zip(oracle.q1.sensor_id, oracle.q1.energy_kwh, strict=True))
        for row in shown["bill"]:
            sensor, values = row["sensor"], {k: float(v) for k, v in row["values"].items()}
            energy_eur, power = want[sensor][1], 10 * 0.33
            vat = energy_eur * 0.06 + power * 0.23
            assert [values[c] for c in ("days", "energy_kwh", "energy_eur", "power_eur",
                                        "vat_eur", "total_eur")] == pytest.approx(
                [10, month[sensor], energy_eur, power, vat, energy_eur + power + vat],
                abs=TOLERANCE), sensor
            assert values["kwh_projected"] > values["energy_kwh"], sensor
        assert sorted(row["sensor"] for row in shown["bill"]) == meters

        # health: the silent meter stands out; each latest reading is the oracle's
        last = oracle.readings.groupby("sensor_id")["timestamp"].max()
        assert shown["alert"] == "1 silent meter"
        assert shown["health"][0]["sensor"] == SILENT
        for row in shown["health"]:
            silent = row["sensor"] == SILENT
            assert (row["silent"], row["badge"]) == (
                ("true", "silent") if silent else ("false", "reporting")), row["sensor"]
            assert row["values"]["last_reading"] == wall_clock(
                last[row["sensor"]].to_pydatetime(), zone)
        assert shown["errors"] == []

        # ids as literal text: in every table whole, cut to a width, whole on hover
        for view in ("q1", "q4", "plans", "bill", "health"):
            assert sorted(row["id"] for row in shown[view]) == meters, view
            assert all(row["title"] == row["id"] for row in shown[view]), view
            width = {row["id"]: row["width"] for row in shown[view]}
            assert width[LONG] < 200 and width[BOLD] < width[LONG], view
        assert [h[0] for h in shown["q3_heads"]] == meters
        assert all(title == text and w < 200 for text, title, w in shown["q3_heads"])
        # ... and in every chart, shortened (plotly draws them as plain text, no tags)
        assert sorted(shown["legend"]) == sorted(shortened(s) for s in meters)
        for view, ticks in shown["ticks"].items():
            assert sorted(ticks) == sorted(shortened(s) for s in meters), view
        assert shown["injected"] == 0
        # the full id on hover
        q4_order = [row["sensor"] for row in shown["q4"]]
        assert LONG in browser.execute_script(HOVER, "q4-chart", 0, q4_order.index(LONG))
        six = 12  # q3's rows are the day's half hours from 00:00: 06:00 is the 13th
        assert LINK in browser.execute_script(HOVER, "q3-chart", meters.index(LINK), six)
        plans_order = [row["sensor"] for row in shown["plans"]]
        assert LINK in browser.execute_script(HOVER, "plans-chart", 0, plans_order.index(LINK))
        assert TOO_LONG not in browser.page_source
        assert console_errors(browser) == []
