"""meterlake serve: the JSON API and the open tables behind it (meterlake.app.web, livegold).

Small gold and silver tables written with delta-rs (no broker, no Spark); the
API must serve what `meterlake query --format json` prints, byte for byte.
Expected band splits are computed by hand from the pieces written.
"""
from __future__ import annotations

import socket
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from starlette.testclient import TestClient

from meterlake.app.cli import main
from meterlake.app.output import format_json
from meterlake.app.web import build_app, check_port
from meterlake.core.config import Config, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.read.answers import query_view
from meterlake.read.livegold import LiveGold
from meterlake.read.travel import commits_of, open_table
from tests.lake_helpers import day_row, halfhour_row, month_row, write

VIEWS = ("q1", "q2", "q3", "q4")
NOW = "2024-02-10 12:00"
PIECES = pa.schema([
    ("sensor_id", pa.string()), ("day", pa.date32()), ("band", pa.string()),
    ("price", pa.float64()), ("kwh", pa.float64()), ("cost_eur", pa.float64()),
])


def pieces(config: Config, rows: list[tuple[str, str, str, float, float]]) -> None:
    """Silver pieces (sensor, day, band, price, kWh); cost = kWh x price."""
    data = pa.Table.from_pylist([
        {"sensor_id": s, "day": date.fromisoformat(d), "band": b, "price": p, "kwh": k,
         "cost_eur": k * p}
        for s, d, b, p, k in rows
    ], schema=PIECES)
    write_deltalake(str(config.table_path("silver")), data, mode="append")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return replace(load_config(), lake=tmp_path / "lake")


@pytest.fixture
def gold(config: Config) -> Config:
    """Version 0 of every gold table, then version 1 of month_energy (m3 arrives)."""
    write(config, "month_energy", [
        month_row("m1", "2024-02-01", 10.0, NOW), month_row("m2", "2024-02-01", 12.5, NOW),
    ])
    write(config, "day_energy", [
        day_row("m1", "2024-02-10", 2.0, NOW), day_row("m2", "2024-02-09", 1.0, NOW),
    ])
    write(config, "halfhour_energy", [
        halfhour_row("m1", "2024-02-10", "2024-02-10 00:00", 0.5, "2024-02-10 00:40"),
        halfhour_row("m2", "2024-02-10", "2024-02-10 00:30", 0.25, "2024-02-10 00:40"),
    ])
    pieces(config, [
        ("m1", "2024-02-10", "ponta", 0.24, 0.3), ("m1", "2024-02-10", "cheias", 0.1741, 0.3),
        ("m2", "2024-02-10", "vazio", 0.1072, 1.0), ("m2", "2024-02-09", "vazio", 0.1072, 9.0),
    ])
    write(config, "day_cost", [
        day_row("m1", "2024-02-10", 0.3 * 0.24 + 0.3 * 0.1741, NOW, "cost_eur"),
        day_row("m2", "2024-02-10", 0.1072, NOW, "cost_eur"),
    ])
    write(config, "month_energy", [month_row("m3", "2024-02-01", 11.0, NOW)])
    return config


@pytest.fixture
def client(gold: Config):
    with TestClient(build_app(gold, LiveGold(gold, check_every_s=0))) as test_client:
        yield test_client


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_serves_the_bytes_of_query_format_json(gold, client, view):
    response = client.get(f"/api/{view}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text == format_json(query_view(gold, view))


def test_version_and_as_of_travel_like_query(gold, client):
    old = client.get("/api/q1", params={"version": 0}).json()
    assert old == [{"sensor_id": "m2", "energy_kwh": 12.5}, {"sensor_id": "m1", "energy_kwh": 10.0}]
    assert client.get("/api/q1").json()[1] == {"sensor_id": "m3", "energy_kwh": 11.0}
    first = commits_of(open_table(gold, "month_energy"))[0].timestamp
    at_first = client.get("/api/q1", params={"as_of": first.isoformat()})
    assert at_first.text == format_json(query_view(gold, "q1", version=0))


def test_at_travels_to_the_version_standing_at_that_event_time(config):
    for hour, kwh in ((10, 1.0), (11, 2.0)):
        row = month_row("m1", "2024-02-01", kwh, f"2024-02-10 {hour}:00")
        write(config, "month_energy", [row], mode="overwrite" if hour > 10 else "append")
    with TestClient(build_app(config, LiveGold(config, check_every_s=0))) as client:
        for at, kwh in (("2024-02-10 10:30", 1.0), ("2024-02-10 11:00", 2.0)):
            response = client.get("/api/q1", params={"at": at})
            assert response.text == format_json(query_view(config, "q1", at=at))
            assert response.json() == [{"sensor_id": "m1", "energy_kwh": kwh}]
        page = client.get("/api/answers", params={"at": "2024-02-10 10:30"}).json()
        assert page["live"] is False and page["answers"]["q1"]["version"] == 0


@pytest.mark.parametrize("params, message", [
    ({"version": 7}, "month_energy has versions 0..1; there is no version 7"),
    ({"version": "two"}, "version must be a whole number, got 'two'"),
    ({"as_of": "yesterday"}, "cannot read time 'yesterday'"),
    ({"as_of": "2000-01-01 00:00:00"}, "month_energy did not exist at 2000-01-01 00:00:"),
    ({"version": 0, "as_of": "2024-02-10 12:00:00"}, "not version and as_of"),
    ({"as_of": "2024-02-10 12:00:00", "at": "2024-02-10 12:00"}, "not as_of and at"),
    ({"at": "2024-02-10 11:00"}, "month_energy has no answer at 2024-02-10 11:00"),
])
def test_a_bad_version_or_time_is_400_with_a_json_error(client, params, message):
    response = client.get("/api/q1", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/q5", "/api/Q1", "/nowhere"])
def test_an_unknown_view_or_path_is_404_with_a_json_error(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()


def test_the_server_is_read_only(client):
    for method in ("post", "put", "delete"):
        assert getattr(client, method)("/api/q1").status_code == 405


def test_a_view_whose_table_is_missing_is_503_saying_what_to_run(config):
    write(config, "month_energy", [month_row("m1", "2024-02-01", 1.0, NOW)])
    with TestClient(build_app(config, LiveGold(config, check_every_s=0))) as client:
        assert client.get("/api/q1").status_code == 200
        response = client.get("/api/q2")
        assert response.status_code == 503
        assert "run `meterlake run --once` first" in response.json()["error"]
        page = client.get("/api/answers").json()
        assert set(page["answers"]) == {"q1"} and set(page["errors"]) == {"q2", "q3", "q4"}


def test_a_new_version_is_served_once_the_table_moves(gold):
    live = LiveGold(gold, check_every_s=0)
    with TestClient(build_app(gold, live)) as client:
        assert client.get("/api/version").json()["versions"]["day_energy"] == 0
        assert client.get("/api/q2").json()[0] == {"sensor_id": "m1", "energy_kwh": 2.0}
        write(gold, "day_energy", [day_row("m2", "2024-02-10", 3.5, "2024-02-10 12:30")])
        assert client.get("/api/version").json()["versions"]["day_energy"] == 1
        assert client.get("/api/q2").json()[0] == {"sensor_id": "m2", "energy_kwh": 3.5}
        assert client.get("/api/q2", params={"version": 0}).json()[0]["sensor_id"] == "m1"


def test_answers_hold_each_view_with_its_version_as_of_and_q4_by_band(gold, client):
    page = client.get("/api/answers").json()
    assert page["live"] is True and page["errors"] == {}
    q1 = page["answers"]["q1"]
    assert (q1["table"], q1["version"], q1["as_of"]) == ("month_energy", 1, "2024-02-10 12:00")
    assert q1["rows"] == client.get("/api/q1").json()
    assert page["answers"]["q3"]["periods"] == ["2024-02-10 00:00", "2024-02-10 00:30"]
    bands = {(r["sensor_id"], r["band"]): r["cost_eur"] for r in page["bands"]["rows"]}
    assert bands == pytest.approx({
        ("m1", "ponta"): 0.072, ("m1", "cheias"): 0.05223, ("m2", "vazio"): 0.1072,
    }, abs=1e-12)
    travelled = client.get("/api/answers", params={"version": 0}).json()
    assert travelled["live"] is False
    assert [r["sensor_id"] for r in travelled["answers"]["q1"]["rows"]] == ["m2", "m1"]


def test_the_timeline_lists_the_moments_of_event_time_with_the_versions_then(config):
    """Two tables written step by step, one after the other (gold's tables commit their
    steps in parallel): one moment per step, naming both tables' versions of that step;
    `at=` a moment answers as of it."""
    for table, row in (("month_energy", month_row), ("day_energy", day_row)):
        for hour in (10, 11, 12):
            day = "2024-02-01" if table == "month_energy" else "2024-02-10"
            write(config, table, [row("m1", day, hour / 10, f"2024-02-10 {hour}:00")],
                  mode="overwrite")
    with TestClient(build_app(config, LiveGold(config, check_every_s=0))) as client:
        moments = client.get("/api/timeline").json()
        assert [(m["label"], m["versions"]) for m in moments] == [
            (f"2024-02-10 {hour}:00", {"month_energy": v, "day_energy": v})
            for v, hour in enumerate((10, 11, 12))
        ]
        assert moments[1]["at"] == "2024-02-10T11:00:00+00:00"
        at_eleven = client.get("/api/q1", params={"at": moments[1]["at"]}).json()
        assert [(r["sensor_id"], r["energy_kwh"]) for r in at_eleven] == [("m1", 1.1)]
        newest = client.get("/api/timeline", params={"limit": 2}).json()
        assert newest == moments[1:]


def test_the_page_and_its_scripts_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>meterlake" in page.text
    for script in ("/static/page.js", "/static/plotly.min.js", "/static/page.css"):
        assert client.get(script).status_code == 200, script


def test_a_port_in_use_is_one_clear_error(gold, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MeterlakeError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
        assert main(["serve", "--lake", str(gold.lake), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("meterlake: error: cannot listen on")


def test_the_command_serves_the_lake_and_ctrl_c_stops_it_in_one_line(gold):
    import signal
    import subprocess
    import sys
    import urllib.request

    from meterlake.core.net import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "meterlake", "--lake", str(gold.lake), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as on a terminal
    )
    try:
        assert f"http://127.0.0.1:{port}/" in server.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/q4", timeout=30) as response:
            assert response.read().decode() == format_json(query_view(gold, "q4"))
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 130
    assert err.strip() == "meterlake: interrupted"
