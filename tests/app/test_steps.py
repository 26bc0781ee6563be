"""Replay in steps of event time and `query --at` (meterlake.app.steps, lake.version_at_event_time).

The cutting and the search are checked on hand-made lines and delta-rs tables;
one end-to-end case replays a small file through the real broker and Spark in
hourly steps and compares each step's answers with the oracle's for the
readings before that step's end.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterlake.app.cli import main
from meterlake.app.replay import replay
from meterlake.app.steps import cut_by_event_time, parse_step
from meterlake.core.config import load_config
from meterlake.core.errors import MeterlakeError
from meterlake.read import lake
from oracle import compute_answers
from tests.helpers import TOLERANCE, quiet
from tests.lake_helpers import month_row, write

LISBON = ZoneInfo("Europe/Lisbon")


@pytest.mark.parametrize(("text", "step"), [
    ("1h", timedelta(hours=1)), ("30min", timedelta(minutes=30)), ("1d", timedelta(days=1)),
    ("2 hours", timedelta(hours=2)), ("90s", timedelta(seconds=90)),
])
def test_a_step_is_a_number_and_a_unit(text, step):
    assert parse_step(text) == step


@pytest.mark.parametrize("text", ["h", "1 week", "-1h", "30s", "0min"])
def test_a_bad_step_is_one_clear_error(text):
    with pytest.raises(MeterlakeError, match="--step"):
        parse_step(text)


def test_lines_are_cut_at_each_step_of_local_time_from_midnight_late_ones_stay_behind():
    lines = [
        "timestamp;sensor_id;energy",
        "2024-02-10 06:10:00;A;1.0",
        "2024-02-10 06:50:00;A;1.1",
        "2024-02-10 07:00:00;A;1.2",   # on a boundary: the next step
        "2024-02-10 06:55:00;B;2.0",   # late: stays with the 07:00 piece
        "not a line",                  # unreadable: with the line before it
        "2024-02-10 09:30:00;A;1.5",   # nothing 08:00-09:00: no empty piece
    ]
    pieces = cut_by_event_time(lines, timedelta(hours=1), LISBON)
    assert [(p.end, p.lines) for p in pieces] == [
        (datetime(2024, 2, 10, 7), lines[1:3]),
        (datetime(2024, 2, 10, 8), lines[3:6]),
        (datetime(2024, 2, 10, 10), lines[6:]),
    ]


@pytest.fixture
def three_hours(tmp_path: Path):
    """month_energy versions 0, 1, 2 standing at 10:00, 11:00, 12:00 UTC (= Lisbon)."""
    config = replace(load_config(), lake=tmp_path / "lake")
    for hour, kwh in ((10, 1.0), (11, 2.0), (12, 3.0)):
        row = month_row("m1", "2024-02-01", kwh, f"2024-02-10 {hour}:00")
        write(config, "month_energy", [row], mode="overwrite" if hour > 10 else "append")
    return config


@pytest.mark.parametrize(("at", "kwh"), [
    ("2024-02-10 10:00", 1.0), ("2024-02-10 10:59:59", 1.0), ("2024-02-10 11:00", 2.0),
    ("2024-02-10 11:30", 2.0), ("2024-02-10 12:00", 3.0), ("2024-03-01 00:00", 3.0),
])
def test_at_picks_the_last_version_standing_at_that_event_time(three_hours, at, kwh):
    assert lake.query_view(three_hours, "q1", at=at).rows == [("m1", kwh)]


def test_at_before_the_first_answer_or_with_a_version_is_one_clear_error(three_hours, capsys):
    with pytest.raises(MeterlakeError, match="no answer at 2024-02-10 09:00: its first version"):
        lake.query_view(three_hours, "q1", at="2024-02-10 09:00")
    with pytest.raises(MeterlakeError, match="not two"):
        lake.query_view(three_hours, "q1", at="2024-02-10 11:00", version=1)
    assert main(["query", "q1", "--lake", str(three_hours.lake), "--at", "yesterday"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read time 'yesterday'" in err[0]


def test_a_replay_in_hourly_steps_leaves_each_hours_answers(spark, kafka, config, tmp_path):
    lines = []
    for minute in range(0, 180, 10):  # 06:00 .. 08:50, across 08:00 (vazio -> cheias)
        ts = f"2024-02-10 {6 + minute // 60:02d}:{minute % 60:02d}:00"
        lines += [f"{ts};A;{100 + 0.03 * minute:.3f}", f"{ts};B;{50 + 0.01 * minute:.3f}"]
    readings = tmp_path / "three_hours.csv"
    readings.write_text("\n".join(lines) + "\n")

    replay(config, readings, echo=quiet, step=timedelta(hours=1))

    versions = [c.version for c in lake.commits_of(lake.open_table(config, "day_cost"))]
    assert len(versions) == 1 + 3  # created, then one MERGE per step
    for hour in (7, 8, 9):
        before = tmp_path / f"before_{hour}.csv"
        before.write_text("\n".join(x for x in lines if x < f"2024-02-10 {hour:02d}") + "\n")
        oracle = compute_answers(before, config.semantics)
        for view in ("q1", "q2", "q4"):
            got = lake.query_view(config, view, at=f"2024-02-10 {hour:02d}:00")
            want = getattr(oracle, view)
            assert [r[0] for r in got.rows] == list(want.iloc[:, 0]), (hour, view)
            assert [r[1] for r in got.rows] == pytest.approx(
                list(want.iloc[:, 1]), abs=TOLERANCE), (hour, view)
