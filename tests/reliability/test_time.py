"""Time zones (issue 7, item 6): answers never depend on the machine's zone; DST days.

- The same replay, run as `python -m meterlake replay` under TZ = UTC,
  Europe/Lisbon, America/New_York and Asia/Kolkata (the JVM takes its default
  zone from TZ at start, Python too), gives identical gold tables, equal to
  the oracle's.
- Across the legal-time switches of 2024 (31 March, 27 October), with
  timestamps carrying their offset, the day has 23 or 25 hours: 46 or 50
  half-hour periods in q3, each with the band and price of the schedule in
  force at its start.
- Naive timestamps in the repeated October hour are read as its first
  occurrence and those in the skipped March hour with the offset before the
  switch (docs/semantics.md, "Time"); a meter that sends the offset gets the
  second occurrence.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterlake.app.pipeline import run_once
from meterlake.read.answers import query_view
from meterlake.tools.publish import publish_readings
from oracle import compute_answers
from tests.helpers import quiet, write_readings_file
from tests.reliability_helpers import (
    assert_gold_equals_oracle,
    cli,
    frame,
    gold_tables,
    with_lake,
    write_conf,
)

LISBON = ZoneInfo("Europe/Lisbon")
ZONES = ("UTC", "Europe/Lisbon", "America/New_York", "Asia/Kolkata")
PRICE = {"ponta": 0.2400, "cheias": 0.1741, "vazio": 0.1072, "super_vazio": 0.1072}
WINTER = {  # conf/tariff.toml, local start times (minutes of the day) -> band
    "ponta": ["09:00-10:30", "18:00-20:30"],
    "cheias": ["08:00-09:00", "10:30-18:00", "20:30-22:00"],
    "vazio": ["22:00-24:00", "00:00-02:00", "06:00-08:00"],
    "super_vazio": ["02:00-06:00"],
}
SUMMER = {
    "ponta": ["10:30-13:00", "19:30-21:00"],
    "cheias": ["08:00-10:30", "13:00-19:30", "21:00-22:00"],
    "vazio": ["22:00-24:00", "00:00-02:00", "06:00-08:00"],
    "super_vazio": ["02:00-06:00"],
}
STEP = timedelta(minutes=10)


def band_of(schedule: dict[str, list[str]], local: datetime) -> str:
    minute = local.hour * 60 + local.minute
    for band, intervals in schedule.items():
        for interval in intervals:
            start, end = (int(t[:2]) * 60 + int(t[3:]) for t in interval.split("-"))
            if start <= minute < end:
                return band
    raise AssertionError(local)


def with_offset(sensor: str, first_utc: datetime, last_utc: datetime, energy: float):
    """A reading every 10 minutes, 0.1 kWh apart, timestamps in local time with offset."""
    rows, at = [], first_utc
    while at <= last_utc:
        rows.append((at.astimezone(LISBON).isoformat(), sensor, f"{energy:.3f}"))
        at, energy = at + STEP, energy + 0.1
    return rows


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 31 March 2024: 00:00 WET (00:00Z) to 24:00 WEST (23:00Z). The last reading is at
# 23:50 local, so "now" is in the day's last period and q3 shows the whole day.
MARCH = [
    *with_offset("M", utc(2024, 3, 30, 22), utc(2024, 3, 31, 22, 50), 1000.0),
    # naive, around the skipped hour: 01:30 does not exist and is read as 01:30Z
    ("2024-03-31 00:50:00", "P", "20.000"),
    ("2024-03-31 01:30:00", "P", "20.400"),
    ("2024-03-31 03:10:00", "P", "20.800"),
]
MARCH_NAIVE = {"P": [utc(2024, 3, 31, 0, 50), utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2, 10)]}
# 27 October 2024: 00:00 WEST (26th 23:00Z) to 24:00 WET (24:00Z), 25 hours.
OCTOBER = [
    *with_offset("O", utc(2024, 10, 26, 22), utc(2024, 10, 27, 23, 50), 2000.0),
    # naive 01:20 is the first 01:20 (WEST, 00:20Z); the second is sent with its offset
    ("2024-10-27 00:40:00", "N", "50.000"),
    ("2024-10-27 01:20:00", "N", "50.400"),
    ("2024-10-27T01:20:00+00:00", "N", "51.000"),
    ("2024-10-27 02:20:00", "N", "51.400"),
]
OCTOBER_NAIVE = {
    "N": [utc(2024, 10, 26, 23, 40), utc(2024, 10, 27, 0, 20), utc(2024, 10, 27, 1, 20),
          utc(2024, 10, 27, 2, 20)]
}


def _sorted(rows):  # by instant: file order is arrival order, each sensor's in time
    def instant(row):
        at = datetime.fromisoformat(row[0])
        return at if at.tzinfo else at.replace(tzinfo=LISBON)

    return sorted(rows, key=instant)


def _publish(config, rows) -> None:
    lines = [f"{ts};{sensor};{energy}" for ts, sensor, energy in rows]
    result = publish_readings(config, lines, speedup=0, progress=False)
    assert (result.sent, result.skipped) == (len(lines), 0)


def _check_switch_day(config, day: str, periods: int, sensor: str) -> None:
    """q3 has one row per period of the day; silver's bands and prices follow the
    schedule in force at each period's start; day_cost is the sum of kWh x price."""
    q3 = query_view(config, "q3")
    starts = [row[0].astimezone(UTC) for row in q3.rows]
    assert len(starts) == periods
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(starts))
    assert q3.rows[0][0].isoformat().startswith(f"{day}T00:00:00")
    pieces = frame(
        config,
        f"""SELECT period_start, band, price, sum(kwh) AS kwh, sum(cost_eur) AS cost
            FROM silver WHERE sensor_id = '{sensor}' AND day = DATE '{day}'
            GROUP BY ALL ORDER BY period_start""",
        ["silver"],
    )
    assert len(pieces) == periods
    for row in pieces.itertuples():
        local = row.period_start.to_pydatetime().astimezone(LISBON)
        summer = local.dst() != timedelta(0)
        expected = band_of(SUMMER if summer else WINTER, local)
        assert (row.band, row.price) == (expected, PRICE[expected]), local
        assert row.cost == pytest.approx(row.kwh * row.price, abs=1e-12)
    full = pieces["kwh"].iloc[:-1]
    assert full.round(9).eq(0.3).all()  # three 10-minute intervals of 0.1 kWh each
    cost = frame(config, f"SELECT cost_eur FROM day_cost WHERE sensor_id = '{sensor}' "
                 f"AND day = DATE '{day}'", ["day_cost"])["cost_eur"].item()
    assert cost == pytest.approx((pieces["kwh"] * pieces["price"]).sum(), abs=1e-9)


def _check_naive(config, expected: dict[str, list[datetime]]) -> None:
    for sensor, instants in expected.items():
        got = frame(config, f"SELECT event_time FROM readings WHERE sensor_id = '{sensor}' "
                    "ORDER BY event_time", ["readings"])["event_time"]
        assert [t.to_pydatetime() for t in got] == instants, sensor


def test_the_fixture_data_spans_the_switches():
    assert MARCH[0][0] == "2024-03-30T22:00:00+00:00"
    assert MARCH[137 + 12][0] == "2024-03-31T23:50:00+01:00"  # the last reading of "M"
    assert OCTOBER[0][0] == "2024-10-26T23:00:00+01:00"
    assert OCTOBER[-5][0] == "2024-10-27T23:50:00+00:00"


@pytest.mark.slow
def test_dst_days_have_23_and_25_hours_with_the_right_periods_bands_and_prices(
    spark, kafka, config, tmp_path
):
    _publish(config, _sorted(MARCH))
    run_once(spark, config, ["bronze", "silver", "gold"], echo=quiet)
    _check_switch_day(config, "2024-03-31", 46, "M")
    _check_naive(config, MARCH_NAIVE)
    day = frame(config, "SELECT energy_kwh FROM day_energy WHERE sensor_id = 'M' "
                "AND day = DATE '2024-03-31'", ["day_energy"])["energy_kwh"].item()
    assert day == pytest.approx(13.7)  # 22 h 50 min of physical time, 0.6 kWh an hour

    _publish(config, _sorted(OCTOBER))
    run_once(spark, config, ["bronze", "silver", "gold"], echo=quiet)
    _check_switch_day(config, "2024-10-27", 50, "O")
    _check_naive(config, OCTOBER_NAIVE)
    day = frame(config, "SELECT energy_kwh FROM day_energy WHERE sensor_id = 'O' "
                "AND day = DATE '2024-10-27'", ["day_energy"])["energy_kwh"].item()
    assert day == pytest.approx(14.9)  # 24 h 50 min

    readings = write_readings_file(tmp_path / "dst.csv", _sorted(MARCH) + _sorted(OCTOBER))
    assert_gold_equals_oracle(config, compute_answers(readings, config.semantics))


def _replay(config, tmp_path: Path, readings: Path, zone: str):
    lake = tmp_path / f"lake-{zone.replace('/', '_')}"
    conf = write_conf(tmp_path / f"{lake.name}.toml", with_lake(config, lake))
    result = cli(["replay", str(readings)], conf, env={"TZ": zone})
    assert result.returncode == 0, result.stderr[-3000:]
    views = result.stdout[result.stdout.index("== Q1"):]
    return with_lake(config, lake), views


@pytest.mark.slow(minutes=2)
def test_the_same_replay_under_four_time_zones_gives_identical_gold(kafka, config, tmp_path):
    rows = _sorted(MARCH) + _sorted(OCTOBER)
    readings = write_readings_file(tmp_path / "dst.csv", rows)
    oracle = compute_answers(readings, config.semantics)
    with concurrent.futures.ThreadPoolExecutor(len(ZONES)) as pool:  # in parallel
        runs = dict(zip(ZONES, pool.map(
            lambda zone: _replay(config, tmp_path, readings, zone), ZONES), strict=True))
    reference = gold_tables(runs["UTC"][0])
    for zone, (lake_config, views) in runs.items():
        assert gold_tables(lake_config) == reference, zone
        assert views == runs["UTC"][1], zone  # the printed answers too
        assert_gold_equals_oracle(lake_config, oracle)
    assert len(reference["halfhour_energy"]) > 0
