"""meterlake serve beyond the four answers: `/api/plans|bill|health|projection` serve the
rows of `meterlake query ... --format json`, byte for byte; `/api/panels` shapes them for
the page (each meter's saving, the bill beside the month ahead, silent meters first).

The lake is written by hand with delta-rs (no Spark): the bill's months of
tests/read/test_bill.py (A, B, C on 15 February, each priced under two plans) and the
readings of tests/read/test_health.py (B silent since 10:00 on 5 February).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from meterlake.app.cli import main
from meterlake.app.output import format_json
from meterlake.app.web import build_app
from meterlake.core.config import Config
from meterlake.read.livegold import LiveGold
from meterlake.read.questions import query_more
from tests.read.test_bill import _lake as bill_lake
from tests.read.test_health import _lake as health_lake

MORE = ("plans", "bill", "health")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    billed = bill_lake(tmp_path)
    health_lake(tmp_path)  # readings and quarantine beside the bill's gold tables
    return billed


@pytest.fixture
def client(config: Config):
    with TestClient(build_app(config, LiveGold(config, check_every_s=0))) as test_client:
        yield test_client


@pytest.mark.parametrize("view", MORE)
def test_each_more_view_serves_the_bytes_of_query_format_json(config, client, view):
    response = client.get(f"/api/{view}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.text == format_json(query_more(config, view))


def test_the_api_rows_equal_the_command_line_json(config, client, capsys):
    for view in MORE:
        assert main(["--lake", str(config.lake), "--set",
                     f"semantics.tariff={config.semantics.tariff}", "query", view,
                     "--format", "json"]) == 0  # fmt: skip
        assert client.get(f"/api/{view}").text == capsys.readouterr().out, view


def test_plans_panel_shows_each_meters_saving_against_its_contract(client):
    doc = client.get("/api/panels").json()
    plans = doc["panels"]["plans"]
    assert plans["columns"] == ["sensor_id", "contract", "contract_eur", "cheapest",
                                "cheapest_eur", "saving_eur"]  # fmt: skip
    got = [tuple(round(v, 9) if isinstance(v, float) else v for v in row.values())
           for row in plans["rows"]]
    # by hand (test_bill's costs): B 12 -> 9 saves 3, A 30 -> 28 saves 2, C's contract is
    # its cheapest; the largest saving first
    assert got == [
        ("B", "su-tri-diario", 12.0, "erse-simples", 9.0, 3.0),
        ("A", "su-tri-diario", 30.0, "erse-simples", 28.0, 2.0),
        ("C", "su-tri-diario", 10.0, "su-tri-diario", 10.0, 0.0),
    ]
    assert plans["sensor_count"] == 3


def test_bill_panel_is_the_bill_largest_first_and_says_why_the_month_ahead_is_missing(client):
    doc = client.get("/api/panels").json()
    bill = doc["panels"]["bill"]
    assert [r["sensor_id"] for r in bill["rows"]] == ["A", "C", "B"]
    assert [r["total_eur"] for r in bill["rows"]] == pytest.approx(
        [39.5885, 21.156, 15.9])  # test_bill's totals
    assert all(r["kwh_projected"] is None for r in bill["rows"])
    assert "halfhour_energy not found" in doc["errors"]["projection"]


def test_health_panel_puts_the_silent_meter_first_in_local_time(client):
    health = client.get("/api/panels").json()["panels"]["health"]
    assert health["silent_count"] == 1
    assert [(r["sensor_id"], r["last_reading"], r["silent"]) for r in health["rows"]] == [
        ("B", "2024-02-05 10:00", True), ("A", "2024-02-05 12:00", False),
        ("C", "2024-02-05 11:30", False),
    ]


def test_the_panels_show_the_largest_and_the_picked_meters_and_every_silent_one(config):
    few = replace(config, read=replace(config.read, page_sensors=1))
    with TestClient(build_app(few, LiveGold(few, check_every_s=0))) as client:
        doc = client.get("/api/panels", params={"sensor": "C"}).json()["panels"]
    assert [r["sensor_id"] for r in doc["plans"]["rows"]] == ["B", "C"]
    assert [r["sensor_id"] for r in doc["bill"]["rows"]] == ["A", "C"]
    assert [r["sensor_id"] for r in doc["health"]["rows"]] == ["B", "C"]  # B: silent
    assert doc["plans"]["sensor_count"] == 3


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/api/plans", {"at": "2024-02-15 12:00"}, 400, "plans travels by version or as_of"),
    ("/api/plans", {"as_of": "yesterday"}, 400, "cannot read time 'yesterday'"),
    ("/api/projection", {}, 503, "table halfhour_energy not found"),
    ("/api/panels", {"version": 0}, 400, "the panels travel by as_of or at"),
])
def test_a_bad_question_is_a_json_error(client, path, params, status, message):
    response = client.get(path, params=params)
    assert response.status_code == status
    assert message in response.json()["error"]
