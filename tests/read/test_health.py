"""`query health` on readings and a quarantine written by hand (delta-rs, no Spark):
the latest reading, today's count and longest gap, quarantined by reason, a silent
meter, and the setting that decides silence."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from meterlake.core.config import Config, HealthConf, load_config
from meterlake.read.questions import query_more
from meterlake.read.sandbox import read_only_sql
from tests.report_lake import write_table

ZONE_START = datetime(2024, 2, 4, 22, 0, tzinfo=UTC)  # February: Lisbon time is UTC
QUARTER = timedelta(minutes=15)


def _at(hhmm: str, day: int = 5) -> datetime:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime(2024, 2, day, hours, minutes, tzinfo=UTC)


def _every_quarter(sensor: str, end: datetime, hole: tuple[str, str] | None = None) -> list:
    """Readings every 15 minutes from Feb 4 22:00 to `end`, none strictly inside hole."""
    rows, t, offset = [], ZONE_START, 0
    while t <= end:
        if hole is None or not _at(hole[0]) < t < _at(hole[1]):
            rows.append({"sensor_id": sensor, "event_time": t, "day": t.date(),
                         "energy": 100.0 + offset, "topic": "energy", "partition": 0,
                         "offset": offset, "kafka_timestamp": t})  # fmt: skip
            offset += 1
        t += QUARTER
    return rows


def _flag(sensor: str | None, reason: str, t: datetime) -> dict:
    return {"reason": reason, "detail": "by hand", "sensor_id": sensor, "event_time": t,
            "energy": 1.0, "key": (sensor or "").encode(), "value": b"{}", "topic": "energy",
            "partition": 0, "offset": 0, "kafka_timestamp": t}  # fmt: skip


def _lake(tmp_path: Path) -> Config:
    """A reads to 12:00 on Feb 5 ("now"); B to 10:00 with no reading between 03:00 and
    05:30; C to 11:30, with two implausible jumps and a duplicate today and a too_late
    yesterday in the quarantine."""
    lake = tmp_path / "lake"
    write_table(lake, "readings", _every_quarter("A", _at("12:00"))
                + _every_quarter("B", _at("10:00"), hole=("03:00", "05:30"))
                + _every_quarter("C", _at("11:30")))  # fmt: skip
    write_table(lake, "quarantine", [
        _flag("C", "implausible_jump", _at("08:00")), _flag("C", "implausible_jump", _at("08:05")),
        _flag("C", "duplicate", _at("09:00")), _flag("C", "too_late", _at("23:00", day=4)),
        _flag(None, "malformed_json", _at("09:00")),
    ])  # fmt: skip
    return replace(load_config(), lake=lake)


def test_health_by_hand_flags_the_silent_meter(tmp_path: Path) -> None:
    config = _lake(tmp_path)
    result = query_more(config, "health")
    assert result.columns == [
        "sensor_id", "last_reading", "cadence_s", "readings_today", "longest_gap_today_s",
        "quarantined_today", "quarantined_by_reason", "silent",
    ]
    rows = [(r[0], r[1].astimezone(UTC), *r[2:]) for r in result.rows]
    assert rows == [
        # B: silent 2 h (7200 s) > 4 x 900 s; today 00:00-03:00 (13) and 05:30-10:00 (19);
        # longest gap 03:00-05:30 = 9000 s (10:00 to now is 7200 s)
        ("B", _at("10:00"), 900.0, 32, 9000.0, 0, "", True),
        # A: every quarter hour from midnight to now: 49 readings, gaps of 900 s
        ("A", _at("12:00"), 900.0, 49, 900.0, 0, "", False),
        # C: 00:00-11:30 (47); 11:30 to now 1800 s; yesterday's too_late not counted
        ("C", _at("11:30"), 900.0, 47, 1800.0, 3, "duplicate 1, implausible_jump 2", False),
    ]


def test_silence_is_measured_in_the_configured_number_of_cadences(tmp_path: Path) -> None:
    config = replace(_lake(tmp_path), health=HealthConf(silent_cadences=10))
    rows = query_more(config, "health").rows
    assert [(r[0], r[-1]) for r in rows] == [("A", False), ("B", False), ("C", False)]


def test_health_is_a_read_only_view_in_sql(tmp_path: Path) -> None:
    config = _lake(tmp_path)
    result = read_only_sql(config, "SELECT sensor_id FROM health WHERE silent")
    assert result.rows == [("B",)]
