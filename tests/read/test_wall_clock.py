"""Times shown to people are local wall-clock time, with the offset only in October's
repeated hour: one rule (`meterlake.read.clock.wall_clock`) for the CLI, the page and the
report. Instants below are written in UTC; Lisbon is UTC+0 in winter, UTC+1 in
summer, and on 27 October 2024 its clocks went from 02:00 WEST back to 01:00 WET."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from meterlake.read import report
from meterlake.read.clock import wall_clock

LISBON = ZoneInfo("Europe/Lisbon")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "shown"),
    [
        ("2024-02-02 00:00", "2024-02-02 00:00"),  # winter: local = UTC, no offset
        ("2024-07-01 11:00", "2024-07-01 12:00"),  # summer: UTC+1, still no offset
        ("2024-10-27 00:30", "2024-10-27 01:30 +01:00"),  # 01:30 the first time (WEST)
        ("2024-10-27 01:30", "2024-10-27 01:30 +00:00"),  # 01:30 the second time (WET)
        ("2024-10-26 23:59", "2024-10-27 00:59"),  # the minute before: once only
        ("2024-10-27 01:00", "2024-10-27 01:00 +00:00"),  # 01:00 WET (00:00 UTC: 01:00 WEST)
        ("2024-10-27 02:00", "2024-10-27 02:00"),  # after the repeated hour
        ("2024-03-31 01:00", "2024-03-31 02:00"),  # March: 01:00 -> 02:00, nothing twice
        ("2024-02-02 00:00:05", "2024-02-02 00:00:05"),  # seconds only when there are some
    ],
)
def test_an_instant_reads_as_lisbon_wall_clock_time(instant: str, shown: str) -> None:
    assert wall_clock(utc(instant), LISBON) == shown


def test_the_zone_defaults_to_the_instants_own() -> None:
    local = utc("2024-10-27 01:30").astimezone(LISBON)
    assert wall_clock(local) == "2024-10-27 01:30 +00:00"
    # pandas, as DuckDB's frames give it (its own time zone objects)
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-10-27 00:30", "2024-10-27 01:30"], utc=True)})
    assert [wall_clock(t) for t in frame["t"].dt.tz_convert("Europe/Lisbon")] == [
        "2024-10-27 01:30 +01:00", "2024-10-27 01:30 +00:00"]  # fmt: skip


def test_the_reports_version_summary_shows_times_by_the_same_rule() -> None:
    def at(text: str) -> pd.Timestamp:
        return pd.Timestamp(text, tz="UTC").tz_convert("Europe/Lisbon")

    by_version = pd.DataFrame({
        "version": [0, 1, 2],
        "committed": [at("2024-10-27 00:10:07"), at("2024-10-27 01:10:00"), at("2024-10-28 09:00")],
        "operation": ["CREATE TABLE", "MERGE", "MERGE"],
        "now": [None, at("2024-10-27 01:30"), at("2024-10-28 08:59")],
        "day": [None, None, None], "sensor_id": [None, "A", "A"], "value": [None, 1.0, 2.0],
    })  # fmt: skip
    summary = report.version_summary(by_version)
    assert list(summary["committed"]) == [
        "2024-10-27 01:10:07 +01:00", "2024-10-27 01:10 +00:00", "2024-10-28 09:00"]
    assert list(summary["now"]) == ["(empty)", "2024-10-27 01:30 +00:00", "2024-10-28 08:59"]
