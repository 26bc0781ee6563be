"""The read side on a fleet: thousands of meters, q3 in bounded memory, the page's
largest meters, out-of-memory as one line.

The gold tables are written with delta-rs (`write_fleet_gold`, no Spark): meter m
has (m mod 100) / 100 + p / 1000 kWh in half hour p (0..47) of 2024-02-09 and of
2024-02-10, except that meters whose number ends in 9 have nothing on the 10th.
So a meter's day is 0.48 (m mod 100) + 1.128 kWh, and "now" is 2024-02-10 23:45.
"""
from __future__ import annotations

import csv
import io
import resource
import subprocess
import sys
from dataclasses import replace

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from starlette.testclient import TestClient

from meterlake.app.cli import main
from meterlake.app.web import build_app, running
from meterlake.core.config import Config, ReadConf, load_config
from meterlake.core.net import free_port
from meterlake.read.answers import query_view
from meterlake.read.clock import parse_instant, zone_of
from meterlake.read.livegold import LiveGold
from tests.browser import chromium, console_errors
from tests.lake_helpers import fleet_id, write_fleet_gold

METERS = 5000
DAY = "2024-02-10"
# The old q3 (a FILTER aggregate per sensor in one SQL view) took 23.8 GB of memory
# for 4,587 meters; laid out from the long form, 5,000 meters take about 220 MB.
ADDRESS_SPACE = 3 << 30  # virtual: Arrow, DuckDB and delta-rs reserve far more than they use
PEAK_RSS_MB = 500

# The CLI in a child process that reports its own peak resident memory on stderr.
RUN_AND_MEASURE = (
    "import resource, sys\n"
    "from meterlake.app.cli import leave, main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "leave(code)\n"  # as the meterlake command leaves: no interpreter teardown
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config = replace(load_config(), lake=tmp_path_factory.mktemp("fleet") / "lake")
    write_fleet_gold(config, METERS, DAY)
    return config


def kwh(meter: int, period: int) -> float:
    return (meter % 100) / 100 + period / 1000


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_q3_of_5000_meters_answers_in_bounded_memory_with_every_cell_right(fleet):
    command = [sys.executable, "-c", RUN_AND_MEASURE, "--lake", str(fleet.lake),
               "query", "q3", "--format", "csv", "--set", "read.memory_limit=256MB"]
    done = subprocess.run(command, preexec_fn=_capped, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mb = int(done.stderr.split("peak_rss_kb")[1].split()[0]) / 1024
    assert peak_mb < PEAK_RSS_MB

    table = list(csv.reader(io.StringIO(done.stdout)))
    header, rows = table[0], table[1:]
    assert header == ["period_start", *(fleet_id(m) for m in range(METERS))]
    assert len(rows) == 48
    assert rows[0][0] == "2024-02-10 00:00:00+00:00" and rows[47][0] == "2024-02-10 23:30:00+00:00"
    assert float(rows[0][1 + 1]) == pytest.approx(0.01)  # M000001 at 00:00
    assert float(rows[21][1 + 123]) == pytest.approx(0.23 + 0.021)  # M000123 at 10:30
    assert float(rows[47][1 + 4998]) == pytest.approx(0.98 + 0.047)  # M004998 at 23:30
    # meters ending in 9 have a row this month but none today: a column, every cell empty
    assert {row[1 + 9] for row in rows} == {""} and {row[1 + 4999] for row in rows} == {""}
    cells = [float(v) for row in rows for v in row[1:] if v]
    assert len(cells) == 48 * METERS * 9 // 10
    assert sum(cells) == pytest.approx(sum(
        kwh(m, p) for m in range(METERS) if m % 10 != 9 for p in range(48)))


def test_q3_long_holds_the_same_cells_one_row_each(fleet):
    result = query_view(fleet, "q3_long", sensors=[fleet_id(123), fleet_id(9)])
    assert result.columns == ["period_start", "sensor_id", "energy_kwh"]
    assert len(result.rows) == 96
    # by period, then sensor: row 2 x 21 + 1 is M000123 at 10:30
    assert result.rows[42][1:] == (fleet_id(9), None)
    assert result.rows[43][1:] == (fleet_id(123), pytest.approx(0.23 + 0.021))
    assert result.rows[43][0] == parse_instant("2024-02-10 10:30", zone_of(fleet))


def test_the_page_gets_the_largest_meters_and_the_ones_picked(fleet):
    with TestClient(build_app(fleet, LiveGold(fleet, check_every_s=0))) as client:
        page = client.get("/api/answers", params={"sensor": [fleet_id(7), "nobody"]}).json()
        sensors = client.get("/api/sensors", params={"prefix": "M00499"}).json()
    # The month: two days of 0.48 x 98 + 1.128 for the 50 meters ending in 98, all tied
    # (ties: sensor descending); meters ending in 99 had only the 9th.
    q1 = page["answers"]["q1"]
    largest = [fleet_id(m) for m in range(4998, 4000, -100)]
    assert [row["sensor_id"] for row in q1["rows"]] == [*largest, fleet_id(7)]
    assert q1["rows"][0]["energy_kwh"] == pytest.approx(2 * (0.48 * 98 + 1.128))
    assert q1["rows"][-1]["energy_kwh"] == pytest.approx(2 * (0.48 * 7 + 1.128))
    assert q1["sensor_count"] == METERS
    # q3: the ten with the most kWh today, and the one picked, in id order
    q3 = page["answers"]["q3"]
    assert q3["columns"] == ["period_start", fleet_id(7), *sorted(largest)]
    assert q3["sensor_count"] == METERS and len(q3["periods"]) == 48
    assert q3["rows"][1][fleet_id(4998)] == pytest.approx(0.98 + 0.001)
    assert sensors == {"count": METERS, "sensors": [fleet_id(m) for m in range(4990, 5000)]}


PAGE_SENSORS = """
const heads = (id) => [...document.querySelectorAll(`#${id} thead th`)].map((th) => th.textContent);
return {
  ready: document.body.dataset.state === "ready",
  q1: [...document.querySelectorAll("#q1 tbody tr")].map((tr) =>
      [tr.dataset.sensor, Number(tr.dataset.value)]),
  q3: heads("q3-table").slice(1),
  traces: (document.getElementById("q3-chart").data || []).length,
  note: document.querySelector("#q3 .as-of").textContent,
};
"""


def test_the_page_shows_ten_meters_of_5000_and_the_one_picked(fleet):
    largest = sorted(fleet_id(m) for m in range(4998, 4000, -100))
    with running(fleet, "127.0.0.1", free_port()) as url, chromium() as browser:
        browser.get(url)
        shown = WebDriverWait(browser, 60, poll_frequency=0.25).until(
            lambda b: (s := b.execute_script(PAGE_SENSORS))["ready"] and s)
        assert shown["q3"] == largest and shown["traces"] == 10
        assert len(shown["q1"]) == 10 and "10 of 5,000 meters" in shown["note"]
        browser.find_element(By.ID, "pick-sensor").send_keys(fleet_id(7))
        browser.find_element(By.ID, "pick-add").click()
        shown = WebDriverWait(browser, 60, poll_frequency=0.25).until(
            lambda b: len((s := b.execute_script(PAGE_SENSORS))["q3"]) == 11 and s)
        assert shown["q3"] == [fleet_id(7), *largest] and shown["traces"] == 11
        assert shown["q1"][-1] == [fleet_id(7), pytest.approx(2 * (0.48 * 7 + 1.128))]
        assert console_errors(browser) == []


def test_a_q3_too_wide_for_sql_and_an_out_of_memory_are_one_line_each(fleet, capsys):
    base = ["--lake", str(fleet.lake)]
    assert main([*base, "sql", "SELECT count(*) FROM q3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "5,000 sensor columns" in err and "q3_long" in err
    assert main([*base, "sql", "SELECT count(*) AS n FROM q3_long WHERE energy_kwh IS NULL",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out == f"n\n{48 * METERS // 10}\n"

    assert main([*base, "query", "q3", "--set", "read.memory_limit=1MB"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("meterlake: error: out of memory") and err.count("\n") == 1
    assert "memory_limit = 1MB" in err and "Traceback" not in err


def test_an_out_of_memory_is_a_json_error_from_the_api(fleet):
    tight = replace(fleet, read=replace(fleet.read, memory_limit="1MB"))
    with TestClient(build_app(tight, LiveGold(tight, check_every_s=0))) as client:
        response = client.get("/api/q3")
    assert response.status_code == 503
    assert response.json()["error"].startswith("out of memory answering q3")


def test_the_read_defaults_are_those_of_the_shipped_conf():
    assert load_config().read == ReadConf()
