"""The read side (meterlake.read: views, answers, time travel, the SQL sandbox, history)
and the CLI's output formats (meterlake.app.output).

Small Delta tables are written with delta-rs in a temporary lake; no broker,
no Spark. Expected answers are computed by hand from docs/semantics.md.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from meterlake.app.cli import main
from meterlake.app.output import format_csv, format_table, print_result
from meterlake.core.config import Config, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.read import connection
from meterlake.read.answers import query_view
from meterlake.read.clock import parse_instant
from meterlake.read.connection import arrow_source, connect, fetch
from meterlake.read.history import HISTORY_METRICS, _metric, history
from meterlake.read.sandbox import lock_down, parse_parameters, read_only_sql
from meterlake.read.views import COST_NOTE
from tests.lake_helpers import day_row, halfhour_row, month_row, utc, write

LISBON = ZoneInfo("Europe/Lisbon")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A fresh empty lake; zone Europe/Lisbon as in conf/meterlake.toml."""
    base = load_config()
    assert base.semantics.zone == "Europe/Lisbon"
    return replace(base, lake=tmp_path / "lake")


@pytest.fixture
def february(config: Config) -> Config:
    """A lake whose gold "now" is 2024-02-10 12:00 UTC (= Lisbon, winter)."""
    now = "2024-02-10 12:00"
    write(config, "month_energy", [
        month_row("m1", "2024-02-01", 10.0, now),
        month_row("m2", "2024-02-01", 10.0 + 4e-10, "2024-02-10 11:00"),  # ties m1
        month_row("m 3", "2024-02-01", 12.5, now),
        month_row('q"4', "2024-02-01", 0.1 + 0.2, now),
        month_row("m1", "2024-01-01", 99.0, "2024-02-01 00:00"),  # last month
        month_row("old", "2024-01-01", 50.0, "2024-01-31 10:00"),  # nothing this month
    ])
    write(config, "day_energy", [
        day_row("m1", "2024-02-09", 5.0, "2024-02-10 00:00"),
        day_row("m1", "2024-02-10", 2.0, now),
        day_row("m2", "2024-02-09", 3.0, "2024-02-10 00:00"),  # nothing today: 0
        day_row("x", "2024-02-10", 2.0 + 5e-10, now),  # ties m1
        day_row("y", "2024-02-10", 2.00000002, now),  # does not tie (2e-8)
        day_row("old", "2024-01-31", 7.0, "2024-02-01 00:00"),  # not this month
    ])
    write(config, "day_cost", [
        day_row("m1", "2024-02-10", 0.123456, now, "cost_eur"),
        day_row("m2", "2024-02-01", 1.0, "2024-02-02 00:00", "cost_eur"),
        day_row("m 3", "2024-02-10", 0.5, now, "cost_eur"),
    ])
    write(config, "halfhour_energy", [
        halfhour_row('a"b', "2024-02-10", "2024-02-10 00:00", 0.5, "2024-02-10 00:30"),
        halfhour_row('a"b', "2024-02-10", "2024-02-10 01:00", 0.7, "2024-02-10 01:10"),
        halfhour_row("A", "2024-02-10", "2024-02-10 00:30", 0.25, "2024-02-10 01:00"),
        halfhour_row("c d", "2024-02-10", "2024-02-10 00:30", 0.0, "2024-02-10 01:00"),
        halfhour_row("z", "2024-01-31", "2024-01-31 23:30", 1.0, "2024-02-01 00:00"),  # January
    ])
    return config


def rows(config: Config, view: str, **kw) -> list[tuple]:
    return query_view(config, view, **kw).rows


# ----------------------------------------------------------------------------- views


def test_q1_is_this_month_sorted_by_value_with_ties_broken_by_sensor_desc(february):
    assert rows(february, "q1") == [
        ("m 3", 12.5), ("m2", 10.0 + 4e-10), ("m1", 10.0), ('q"4', 0.1 + 0.2),
    ]


def test_q2_lists_sensors_with_a_row_this_month_and_zero_when_nothing_today(february):
    assert rows(february, "q2") == [
        ("y", 2.00000002), ("x", 2.0 + 5e-10), ("m1", 2.0), ("m2", 0.0),
    ]


def test_q4_is_todays_cost_per_sensor_of_the_month(february):
    assert rows(february, "q4") == [("m 3", 0.5), ("m1", 0.123456), ("m2", 0.0)]


def test_q3_pivots_half_hours_before_now_with_null_where_no_piece(february):
    result = query_view(february, "q3")
    assert result.columns == ["period_start", "A", 'a"b', "c d"]
    assert result.rows == [
        (utc("2024-02-10 00:00"), None, 0.5, None),
        (utc("2024-02-10 00:30"), 0.25, None, 0.0),
        (utc("2024-02-10 01:00"), None, 0.7, None),
    ]
    assert all(row[0].utcoffset() == timedelta(0) for row in result.rows)


def test_q3_has_a_column_for_every_sensor_of_the_month_and_none_for_last_months(config):
    now = "2024-03-05 10:00"
    write(config, "halfhour_energy", [
        halfhour_row("today", "2024-03-05", "2024-03-05 09:00", 0.4, now),
        halfhour_row("earlier", "2024-03-01", "2024-03-01 00:00", 1.5, "2024-03-01 00:30"),
        halfhour_row("february", "2024-02-29", "2024-02-29 23:30", 2.0, "2024-03-01 00:00"),
    ])
    result = query_view(config, "q3")
    assert result.columns == ["period_start", "earlier", "today"]
    assert len(result.rows) == 20  # 00:00 .. 09:30 (winter: UTC is Lisbon time)
    assert result.rows[18] == (utc("2024-03-05 09:00"), None, 0.4)
    assert all(row[1] is None for row in result.rows)
    long = query_view(config, "q3_long")
    assert long.columns == ["period_start", "sensor_id", "energy_kwh"]
    assert len(long.rows) == 40
    assert long.rows[36:38] == [(utc("2024-03-05 09:00"), "earlier", None),
                                (utc("2024-03-05 09:00"), "today", 0.4)]
    in_sql = read_only_sql(config, "SELECT * FROM q3_long WHERE energy_kwh IS NOT NULL")
    assert in_sql.rows == [(utc("2024-03-05 09:00"), "today", 0.4)]
    wide_sql = read_only_sql(config, "SELECT * FROM q3 WHERE today IS NOT NULL")
    assert wide_sql.columns == ["period_start", "earlier", "today"]
    assert wide_sql.rows == [(utc("2024-03-05 09:00"), None, 0.4)]


def test_current_month_is_the_local_month_of_the_latest_as_of(config):
    # 2024-03-31 23:30 UTC is 2024-04-01 00:30 in Lisbon (summer time).
    write(config, "month_energy", [
        month_row("a", "2024-03-01", 30.0, "2024-03-31 23:00"),
        month_row("b", "2024-03-01", 31.0, "2024-03-31 22:00"),
        month_row("b", "2024-04-01", 0.5, "2024-03-31 23:30"),
    ])
    assert rows(config, "q1") == [("b", 0.5)]


def test_current_day_is_the_local_day_of_the_latest_as_of(config):
    write(config, "day_energy", [
        day_row("a", "2024-07-01", 4.0, "2024-07-01 22:00"),
        day_row("a", "2024-07-02", 0.2, "2024-07-01 23:15"),  # 00:15 local, 2 July
    ])
    assert rows(config, "q2") == [("a", 0.2)]


def test_q3_on_the_25_hour_october_day_has_50_periods(config):
    # Lisbon 2024-10-27: midnight is 2024-10-26 23:00 UTC, the next one 2024-10-28 00:00 UTC.
    now = "2024-10-27 23:50"
    write(config, "halfhour_energy", [
        halfhour_row("m1", "2024-10-27", "2024-10-27 00:30", 1.0, now),  # 01:30+01:00
        halfhour_row("m1", "2024-10-27", "2024-10-27 01:30", 2.0, now),  # 01:30+00:00
        halfhour_row("m1", "2024-10-27", "2024-10-27 23:30", 3.0, now),
    ])
    result = query_view(config, "q3")
    assert len(result.rows) == 50
    # (UTC before subtracting: Python subtracts wall times within one tzinfo)
    starts = [row[0].astimezone(UTC) for row in result.rows]
    assert starts[0] == utc("2024-10-26 23:00") and starts[-1] == utc("2024-10-27 23:30")
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(starts))
    csv_lines = format_csv(result).splitlines()
    assert csv_lines[0] == "period_start,m1"
    assert csv_lines[1] == "2024-10-27 00:00:00+01:00,"
    assert "2024-10-27 01:30:00+01:00,1.0" in csv_lines
    assert "2024-10-27 01:30:00+00:00,2.0" in csv_lines
    assert csv_lines[-1] == "2024-10-27 23:30:00+00:00,3.0"
    # the table shows local wall-clock time, with the offset only in the repeated hour
    table = format_table(result).splitlines()
    assert table[2] == "2024-10-27 00:00" + " " * 10 + "NULL"
    assert "2024-10-27 01:00 +01:00   NULL" in table and "2024-10-27 01:30 +00:00  2.000" in table
    assert "2024-10-27 02:00" + " " * 10 + "NULL" in table
    assert table[-3] == "2024-10-27 23:30" + " " * 9 + "3.000"


def test_q3_on_the_23_hour_march_day_has_46_periods(config):
    # Lisbon 2024-03-31: 00:00 UTC to 23:00 UTC.
    write(config, "halfhour_energy", [
        halfhour_row("m1", "2024-03-31", "2024-03-31 22:30", 1.0, "2024-03-31 22:59"),
    ])
    result = query_view(config, "q3")
    assert len(result.rows) == 46
    assert result.rows[-1] == (utc("2024-03-31 22:30"), 1.0)
    assert format_csv(result).splitlines()[-1] == "2024-03-31 23:30:00+01:00,1.0"


def test_q3_stops_at_the_last_period_starting_before_now(config):
    write(config, "halfhour_energy", [
        halfhour_row("m1", "2024-02-10", "2024-02-10 00:30", 1.0, "2024-02-10 01:00"),
    ])
    result = query_view(config, "q3")
    # "now" is 01:00: the 01:00 period has not started before it.
    assert [row[0] for row in result.rows] == [utc("2024-02-10 00:00"), utc("2024-02-10 00:30")]


def test_views_are_registered_in_sql_too(february):
    result = read_only_sql(february, "SELECT sensor_id FROM q1")
    assert result.rows == [("m 3",), ("m2",), ("m1",), ('q"4',)]


# ----------------------------------------------------------------------------- time travel


@pytest.fixture
def three_versions(config: Config) -> list[datetime]:
    """month_energy at version 0 (m1=1), 1 (+ m2=2), 2 (overwritten: m1=5); commit times."""
    write(config, "month_energy", [month_row("m1", "2024-02-01", 1.0, "2024-02-01 10:00")])
    time.sleep(0.05)
    write(config, "month_energy", [month_row("m2", "2024-02-01", 2.0, "2024-02-01 11:00")])
    time.sleep(0.05)
    write(config, "month_energy", [month_row("m1", "2024-02-01", 5.0, "2024-02-01 12:00")],
          mode="overwrite")
    commits = DeltaTable(str(config.table_path("month_energy"))).history()
    stamps = {h["version"]: datetime.fromtimestamp(h["timestamp"] / 1000, UTC) for h in commits}
    return [stamps[v] for v in range(3)]


def test_version_loads_that_version_of_the_views_table(config, three_versions):
    assert rows(config, "q1", version=0) == [("m1", 1.0)]
    assert rows(config, "q1", version=1) == [("m2", 2.0), ("m1", 1.0)]
    assert rows(config, "q1", version=2) == [("m1", 5.0)]
    assert rows(config, "q1") == [("m1", 5.0)]


def test_as_of_loads_the_latest_version_committed_at_or_before_it(config, three_versions):
    _, v1, v2 = three_versions
    assert rows(config, "q1", as_of=v1.isoformat()) == [("m2", 2.0), ("m1", 1.0)]
    before_v1 = (v1 - timedelta(milliseconds=1)).isoformat()
    assert rows(config, "q1", as_of=before_v1) == [("m1", 1.0)]
    assert rows(config, "q1", as_of=(v2 + timedelta(days=1)).isoformat()) == [("m1", 5.0)]


def test_as_of_without_offset_is_local_time(config, three_versions):
    v1 = three_versions[1]
    local = v1.astimezone(LISBON).replace(tzinfo=None)
    first = local.replace(tzinfo=LISBON)  # fold=0: how a naive time is read (docs)
    naive = rows(config, "q1", as_of=local.isoformat(sep=" "))
    assert naive == rows(config, "q1", as_of=first.isoformat())
    if first.astimezone(UTC) == v1:  # false only for a commit in October's repeated hour
        assert naive == [("m2", 2.0), ("m1", 1.0)]


def test_unknown_version_is_an_error_naming_the_versions(config, three_versions):
    with pytest.raises(MeterlakeError, match=r"month_energy has versions 0\.\.2"):
        query_view(config, "q1", version=3)
    with pytest.raises(MeterlakeError, match=r"versions 0\.\.2"):
        query_view(config, "q1", version=-1)


def test_time_before_the_table_existed_is_an_error(config, three_versions):
    with pytest.raises(MeterlakeError, match="month_energy did not exist at 2000-01-01"):
        query_view(config, "q1", as_of="2000-01-01 00:00:00")


def test_unreadable_time_is_an_error(config, three_versions):
    with pytest.raises(MeterlakeError, match="cannot read time"):
        query_view(config, "q1", as_of="yesterday")


def test_time_travel_reports_the_version_in_the_table_notes(config, three_versions):
    text = format_table(query_view(config, "q1", version=1))
    assert "month_energy version 1" in text
    assert "as of 2024-02-01 11:00 (month_energy version 1)" in text  # local wall clock


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-02-03 12:00:00", "2024-02-03 12:00"),
    ("2024-07-03 12:00:00", "2024-07-03 11:00"),
    ("2024-07-03T12:00:00+02:00", "2024-07-03 10:00"),
    ("2024-07-03T12:00:00Z", "2024-07-03 12:00"),
    ("2024-10-27 01:30:00", "2024-10-27 00:30"),  # repeated hour: the first one
    ("2024-03-31 01:30:00", "2024-03-31 01:30"),  # skipped hour: offset before the switch
])
def test_parse_instant_reads_local_time_or_an_offset(text, expected):
    assert parse_instant(text, LISBON) == utc(expected)


# ----------------------------------------------------------------------------- output


def test_csv_has_the_contract_header_and_full_precision(february, capsys):
    print_result(query_view(february, "q1"), "csv")
    assert capsys.readouterr().out.splitlines() == [
        "sensor_id,energy_kwh",
        "m 3,12.5",
        "m2,10.0000000004",
        "m1,10.0",
        '"q""4",0.30000000000000004',
    ]
    print_result(query_view(february, "q4"), "csv")
    assert capsys.readouterr().out.splitlines()[0] == "sensor_id,cost_eur"


def test_q3_csv_header_quotes_sensor_ids_and_leaves_nulls_empty(february, capsys):
    print_result(query_view(february, "q3"), "csv")
    assert capsys.readouterr().out.splitlines() == [
        'period_start,A,"a""b",c d',
        "2024-02-10 00:00:00+00:00,,0.5,",
        "2024-02-10 00:30:00+00:00,0.25,,0.0",
        "2024-02-10 01:00:00+00:00,,0.7,",
    ]


def test_json_is_a_list_of_objects_at_full_precision(february, capsys):
    print_result(query_view(february, "q1"), "json")
    objects = json.loads(capsys.readouterr().out)
    assert objects[1] == {"sensor_id": "m2", "energy_kwh": 10.0 + 4e-10}
    assert objects[3] == {"sensor_id": 'q"4', "energy_kwh": 0.1 + 0.2}
    print_result(query_view(february, "q3"), "json")
    first = json.loads(capsys.readouterr().out)[0]
    assert first == {"period_start": "2024-02-10 00:00:00+00:00", "A": None, 'a"b': 0.5,
                     "c d": None}


def test_table_rounds_kwh_to_3_and_euros_to_4_decimals_with_the_cost_note(february):
    q1 = format_table(query_view(february, "q1"))
    assert "12.500" in q1 and "0.300" in q1 and "10.0000000004" not in q1
    assert COST_NOTE not in q1
    q4 = format_table(query_view(february, "q4"))
    lines = q4.splitlines()
    assert lines[0].split() == ["sensor_id", "cost_eur"]
    assert lines[3] == "m1           0.1235"
    assert "(3 rows)" in lines
    assert COST_NOTE in lines


def test_table_shows_null_and_aligns_columns(february):
    lines = format_table(query_view(february, "q3")).splitlines()
    assert lines[:5] == [
        'period_start          A    a"b    c d',
        "----------------  -----  -----  -----",
        "2024-02-10 00:00   NULL  0.500   NULL",
        "2024-02-10 00:30  0.250   NULL  0.000",
        "2024-02-10 01:00   NULL  0.700   NULL",
    ]
    assert lines[6].startswith("q3: kWh per sensor and half hour today (2024-02-10), as of ")


def test_result_to_pandas(february):
    frame = query_view(february, "q1").to_pandas()
    assert list(frame.columns) == ["sensor_id", "energy_kwh"]
    assert frame["energy_kwh"].tolist() == [12.5, 10.0 + 4e-10, 10.0, 0.1 + 0.2]


def answers_csv(config: Config) -> str:
    sql = "SELECT as_of, day FROM day_energy ORDER BY 1, 2"
    results = [query_view(config, "q3"), query_view(config, "q2"),
               read_only_sql(config, sql)]
    return "".join(format_csv(r) for r in results)


def test_outputs_do_not_depend_on_the_machines_time_zone(february):
    here = answers_csv(february)
    assert "2024-02-10 12:00:00+00:00,2024-02-10" in here
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_lake import answers_csv\n"
        "from meterlake.core.config import load_config\n"
        "print(answers_csv(load_config()), end='')\n"
        # out the way meterlake's own commands leave (cli.leave): the interpreter's
        # teardown of Arrow's and DuckDB's thread pools can abort a finished process
        "from meterlake.app.cli import leave\n"
        "leave(0)\n"
    )
    env = {**os.environ, "TZ": "America/New_York", "METERLAKE_LAKE": str(february.lake)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout == here


# ----------------------------------------------------------------------------- sql sandbox


def test_sql_reads_every_table_present(february):
    write(february, "bronze", [{
        "key": b"m1", "value": b'{"energy": 1}', "topic": "energy", "partition": 0, "offset": 7,
        "kafka_timestamp": utc("2024-02-10 12:00"), "ingested_at": utc("2024-02-10 12:00"),
    }])
    result = read_only_sql(february, "SELECT value, \"offset\", kafka_timestamp FROM bronze")
    assert result.rows == [(b'{"energy": 1}', 7, utc("2024-02-10 12:00"))]
    expected = '"{""energy"": 1}",7,2024-02-10 12:00:00+00:00'
    assert format_csv(result).splitlines()[1] == expected


@pytest.mark.parametrize("statement", [
    "SELECT count(*) FROM month_energy",
    "WITH t AS (SELECT * FROM day_energy) SELECT count(*) FROM t",
    "VALUES (1), (2)",
    "FROM q2 SELECT count(*)",
    "PIVOT month_energy ON month USING sum(energy_kwh)",
    "SELECT * FROM (PIVOT day_energy ON day USING sum(energy_kwh))",
    "DESCRIBE halfhour_energy",
    "SUMMARIZE day_cost",
    "SHOW TABLES",
])
def test_sql_accepts_queries(february, statement):
    assert read_only_sql(february, statement).rows


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO '{tmp}/out.csv'",
    "COPY month_energy TO '{tmp}/out.parquet'",
    "EXPORT DATABASE '{tmp}/out'",
    "ATTACH '{tmp}/out.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "PRAGMA enable_profiling",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "DROP VIEW q1",
    "INSERT INTO month_energy SELECT * FROM month_energy",
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP VIEW q1",
    "CALL pragma_version()",
    "CHECKPOINT",
    "EXPLAIN ANALYZE SELECT 1",
    "BEGIN TRANSACTION",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{tmp}/lake/gold/month_energy/*.parquet')",
    "SELECT * FROM query('DROP VIEW q1')",
    "",
    "-- nothing",
])
def test_sql_refuses_anything_but_one_read_only_query(february, tmp_path, statement):
    with pytest.raises(MeterlakeError) as caught:
        read_only_sql(february, statement.format(tmp=tmp_path))
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.glob("out*"))
    assert read_only_sql(february, "SELECT count(*) FROM q1").rows == [(4,)]


def test_sandbox_is_enforced_by_duckdb_too_and_the_lake_stays_readable(february, tmp_path):
    with connect(february) as con:
        lock_down(con)
        assert con.execute("SELECT count(*) FROM month_energy").fetchone() == (6,)
        assert con.execute("SELECT count(*) FROM q3").fetchone() == (3,)
        for statement in (
            f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
            "SELECT * FROM read_csv('/etc/passwd')",
            f"ATTACH '{tmp_path}/out.db'",
            "INSTALL httpfs",
            "LOAD httpfs",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(statement)
        for statement in ("SET enable_external_access = true", "SET lock_configuration = false"):
            with pytest.raises(duckdb.InvalidInputException, match="locked"):
                con.execute(statement)
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'python_enable_replacements', 'lock_configuration')"
        ).fetchall())
    assert settings == {"enable_external_access": "false", "python_enable_replacements": "false",
                        "lock_configuration": "true"}
    assert not list(tmp_path.glob("out*"))


def test_sql_does_not_scan_python_variables(february, monkeypatch):
    # DuckDB's replacement scan would find an Arrow table among the globals of
    # the module that runs the query; the sandbox turns that off.
    monkeypatch.setattr(connection, "secret", pa.table({"x": [1]}), raising=False)
    with connect(february) as con:
        assert fetch(con, "SELECT * FROM secret", LISBON).rows == [(1,)]
    with pytest.raises(MeterlakeError, match="Table with name secret does not exist"):
        read_only_sql(february, "SELECT * FROM secret")


def test_bad_sql_is_one_line_with_duckdbs_message(february):
    with pytest.raises(MeterlakeError) as caught:
        read_only_sql(february, "SELECT sensor_id FROM month_energy WHERE")
    assert str(caught.value).startswith("bad SQL: Parser Error: syntax error")
    assert "\n" not in str(caught.value)
    with pytest.raises(MeterlakeError) as caught:
        read_only_sql(february, "SELECT nope FROM month_energy")
    assert "Binder Error" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(MeterlakeError, match="Table with name month_energi does not exist"):
        read_only_sql(february, "SELECT * FROM month_energi")


def test_sql_without_gold_says_to_run_the_pipeline(config):
    with pytest.raises(MeterlakeError, match=r"no gold tables under .*meterlake run --once"):
        read_only_sql(config, "SELECT * FROM q1")
    assert read_only_sql(config, "SELECT 42").rows == [(42,)]


def test_query_without_gold_says_to_run_the_pipeline(config):
    with pytest.raises(MeterlakeError, match=r"month_energy not found .*meterlake run --once"):
        query_view(config, "q1")


def test_cli_prints_one_error_line_and_exits_non_zero(february, capsys):
    assert main(["--lake", str(february.lake), "sql", "DROP VIEW q1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("meterlake: error: read-only: DROP") and err.count("\n") == 1
    assert main(["--lake", str(february.lake), "query", "q4", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "sensor_id,cost_eur"


INJECTION = "m1' OR '1'='1"


def test_query_sensor_filter_keeps_those_sensors_and_binds_their_ids(february):
    assert rows(february, "q1", sensors=["m1", 'q"4']) == [("m1", 10.0), ('q"4', 0.1 + 0.2)]
    assert rows(february, "q4", sensors=["m2"]) == [("m2", 0.0)]
    assert rows(february, "q2", sensors=[INJECTION]) == []
    assert rows(february, "q1", sensors=["m1", "m1') OR true --"]) == [("m1", 10.0)]


def test_query_sensor_filter_picks_q3_columns(february):
    result = query_view(february, "q3", sensors=['a"b', "nobody"])
    assert result.columns == ["period_start", 'a"b']
    assert [row[1] for row in result.rows] == [0.5, None, 0.7]


def test_sql_parameters_are_bound_as_values_never_as_sql(february):
    statement = "SELECT sensor_id, energy_kwh FROM day_energy WHERE sensor_id = $s AND day = $d"
    ok = read_only_sql(february, statement, {"s": "m1", "d": "2024-02-10"})
    assert ok.rows == [("m1", 2.0)]
    assert read_only_sql(february, statement, {"s": INJECTION, "d": "2024-02-10"}).rows == []
    hostile = read_only_sql(february, "SELECT $x AS x", {"x": "'); DROP VIEW q1; --"})
    assert hostile.rows == [("'); DROP VIEW q1; --",)]
    assert read_only_sql(february, "SELECT count(*) FROM q1").rows == [(4,)]


@pytest.mark.parametrize("pair", ["noequals", "=value", "two words=x", "a;b=1"])
def test_a_malformed_param_is_one_clear_error(pair):
    with pytest.raises(MeterlakeError, match="--param wants NAME=VALUE"):
        parse_parameters([pair])


def test_cli_binds_sensor_and_param_values(february, capsys):
    lake_dir = str(february.lake)
    assert main(["--lake", lake_dir, "query", "q1", "--sensor", "m2", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["sensor_id,energy_kwh", "m2,10.0000000004"]
    statement = "SELECT sensor_id FROM day_cost WHERE day = $day ORDER BY sensor_id"
    argv = ["--lake", lake_dir, "sql", statement, "--param", "day=2024-02-10", "--format", "csv"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["sensor_id", "m 3", "m1"]
    assert main(["--lake", lake_dir, "sql", "SELECT 1", "--param", "oops"]) == 1
    assert capsys.readouterr().err.startswith("meterlake: error: --param wants NAME=VALUE")


# ----------------------------------------------------------------------------- history


def test_history_lists_versions_newest_first_in_local_time(config, three_versions):
    result = history(config, "month_energy")
    assert result.columns == [
        "version", "timestamp", "operation", "rows_written", "rows_updated", "rows_deleted",
    ]
    assert [(r[0], r[2], r[3]) for r in result.rows] == [
        (2, "WRITE", 1), (1, "WRITE", 1), (0, "WRITE", 1),
    ]
    stamps = [r[1] for r in reversed(result.rows)]
    assert stamps == [v.astimezone(LISBON) for v in three_versions]
    assert all(s.tzinfo == LISBON for s in stamps)
    assert "month_energy: 3 commits" in format_table(result)


def test_history_reads_spark_merge_metrics():
    merge = {"numTargetRowsInserted": "3", "numTargetRowsUpdated": "8",
             "numTargetRowsDeleted": "0", "numOutputRows": "11"}
    assert [_metric(merge, names) for names in HISTORY_METRICS.values()] == [3, 8, 0]
    stream = {"numOutputRows": "42", "numAddedFiles": "1"}
    assert [_metric(stream, names) for names in HISTORY_METRICS.values()] == [
        42, None, None,
    ]


def test_history_of_an_unknown_table_lists_the_known_ones(config):
    with pytest.raises(MeterlakeError, match=r"unknown table 'nope'; known: bronze, .*day_cost"):
        history(config, "nope")


def test_history_of_a_table_not_created_yet_is_an_error(config):
    with pytest.raises(MeterlakeError, match="day_cost has not been created yet"):
        history(config, "day_cost")


# ----------------------------------------------------------------------------- delta features


def test_tables_with_deletion_vectors_are_read_through_delta_rs(config):
    write(config, "month_energy", [month_row("m1", "2024-02-01", 1.5, "2024-02-01 10:00")],
          configuration={"delta.enableDeletionVectors": "true"})
    table = DeltaTable(str(config.table_path("month_energy")))
    assert isinstance(arrow_source(table), pa.Table)
    assert rows(config, "q1") == [("m1", 1.5)]
