"""Replay in steps of event time and `query --at` (meterlake.core.steps,
meterlake.read.answers.version_at_event_time).

The cutting and the search are checked on hand-made lines and delta-rs tables;
one end-to-end case replays a small file through the real broker and Spark in
hourly steps and compares each step's answers with the oracle's for the
readings before that step's end.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from meterlake.app.cli import main
from meterlake.app.replay import replay, with_step
from meterlake.core.config import load_config
from meterlake.core.errors import MeterlakeError
from meterlake.core.steps import parse_step
from meterlake.read.answers import query_view
from meterlake.read.travel import commits_of, open_table
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


def test_a_config_step_is_checked_like_the_option():
    assert with_step(load_config(), timedelta(hours=1)).streams.gold_step == "3600s"
    with pytest.raises(MeterlakeError, match=r"\[streams\] gold_step: --step must be"):
        replace(load_config().streams, gold_step="30s")


def _piece(sensor: str, period: str, kwh: float, end: str) -> tuple:
    start = datetime.fromisoformat(period).replace(tzinfo=UTC)
    return (sensor, start, start.date(), start.date().replace(day=1), "vazio", 0.1, kwh,
            kwh / 10, None, datetime.fromisoformat(end).replace(tzinfo=UTC), 1, "energy", 0,
            0, None)


def test_each_piece_goes_to_the_step_of_local_time_its_reading_falls_in(spark):
    """period_sums in hourly steps of Lisbon's wall clock (UTC in winter, UTC+1 in
    summer): a reading on a step's end opens the next step; a late one goes to the
    step of its own event time; a piece of an earlier period to its reading's step."""
    from gold.answers import STEP_END, in_steps, period_sums
    from silver.job import PIECES_SCHEMA

    pieces = spark.createDataFrame([
        _piece("A", "2024-02-10 06:00", 1.0, "2024-02-10 06:10"),
        _piece("A", "2024-02-10 06:30", 2.0, "2024-02-10 06:50"),
        _piece("A", "2024-02-10 06:30", 3.0, "2024-02-10 07:00"),  # on the end: 08:00's
        _piece("B", "2024-02-10 06:30", 4.0, "2024-02-10 06:55"),  # late in the batch
        _piece("B", "2024-02-10 05:30", 5.0, "2024-02-10 07:20"),  # a long interval
        _piece("C", "2024-07-10 06:00", 6.0, "2024-07-10 06:30"),  # 07:30 in Lisbon
    ], PIECES_SCHEMA)
    sums = period_sums(pieces, 3_600_000_000, "Europe/Lisbon").toArrow()
    local = [datetime(1970, 1, 1) + timedelta(microseconds=rows[STEP_END][0].as_py())
             for rows in in_steps(sums)]
    assert local == [datetime(2024, 2, 10, 7), datetime(2024, 2, 10, 8),
                     datetime(2024, 7, 10, 8)]
    kwh = [sorted(rows["kwh"].to_pylist()) for rows in in_steps(sums)]
    assert kwh == [[1.0, 2.0, 4.0], [3.0, 5.0], [6.0]]


def test_a_batch_in_steps_run_again_after_a_crash_commits_each_step_once(
    tmp_path, monkeypatch
):
    """The writer dies after two of three steps of a batch; run again, it commits the
    third step alone, then skips the whole batch."""
    from gold import job
    from gold.answers import ANSWERS, STEP_END, UTC_MICROS
    from meterlake.core import commits

    answer = ANSWERS["day_energy"]
    config = replace(load_config(), lake=tmp_path / "lake")
    path = str(config.table_path(answer.table))
    write_deltalake(path, answer.arrow_schema.empty_table(), partition_by=[answer.partition])
    writer = job.GoldWriter(with_step(config, timedelta(hours=1)))

    def step(hour: int, kwh: float) -> pa.Table:
        end = datetime(2024, 2, 10, hour, tzinfo=UTC)
        return pa.table({
            "sensor_id": ["A"], "month": [date(2024, 2, 1)], "day": [date(2024, 2, 10)],
            "period_start": pa.array([end - timedelta(minutes=30)], UTC_MICROS),
            STEP_END: [hour * 3_600_000_000], "kwh": [kwh], "cost_eur": [kwh / 10],
            "as_of": pa.array([end - timedelta(minutes=5)], UTC_MICROS),
        })

    steps = [step(7, 1.0), step(8, 2.0), step(9, 4.0)]
    real_replace, calls = commits.Partitions.replace, []

    def dies_on_the_third(self, table, increments, merge, transactions):
        calls.append(transactions)
        if len(calls) == 3:
            raise KeyboardInterrupt("kill")
        real_replace(self, table, increments, merge, transactions)

    monkeypatch.setattr(commits.Partitions, "replace", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        writer.write(answer, steps, "day_energy-q", 5)
    monkeypatch.setattr(commits.Partitions, "replace", real_replace)
    writer.write(answer, steps, "day_energy-q", 5)
    writer.write(answer, steps, "day_energy-q", 5)

    table = DeltaTable(path)
    assert table.version() == 3  # created, then one version per step
    assert table.to_pyarrow_table()["energy_kwh"].to_pylist() == [7.0]
    assert table.transaction_version("day_energy-q") == 5
    assert table.transaction_version("day_energy-q-step") == 5 * commits.STEP_SLOTS + 2
    assert [DeltaTable(path, version=v).to_pyarrow_table()["energy_kwh"].to_pylist()
            for v in (1, 2)] == [[1.0], [3.0]]


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
    assert query_view(three_hours, "q1", at=at).rows == [("m1", kwh)]


def test_at_before_the_first_answer_or_with_a_version_is_one_clear_error(three_hours, capsys):
    with pytest.raises(MeterlakeError, match="no answer at 2024-02-10 09:00: its first version"):
        query_view(three_hours, "q1", at="2024-02-10 09:00")
    with pytest.raises(MeterlakeError, match="not two"):
        query_view(three_hours, "q1", at="2024-02-10 11:00", version=1)
    assert main(["query", "q1", "--lake", str(three_hours.lake), "--at", "yesterday"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read time 'yesterday'" in err[0]


def test_a_replay_in_hourly_steps_leaves_each_hours_answers(spark, kafka, config, tmp_path):
    """Two days of two meters every 10 minutes in one catch-up, in hourly steps: one
    version per hour, and q2 at every hour (q1 and q4 at some) equal the oracle over
    the readings before that hour. One reading of A arrives an hour late in the file:
    history by event time counts it in its own hour."""
    lines = []
    for minute in range(0, 48 * 60, 10):
        ts = datetime(2024, 2, 10) + timedelta(minutes=minute)
        rate = 0.03 if 8 <= ts.hour < 22 else 0.01  # across vazio and cheias
        lines += [f"{ts:%Y-%m-%d %H:%M:%S};A;{100 + rate * minute:.3f}",
                  f"{ts:%Y-%m-%d %H:%M:%S};B;{50 + 0.01 * minute:.3f}"]
    late = lines.pop(2 * 11)  # A at 01:50 ...
    lines.insert(2 * 18, late)  # ... sent after 03:00's lines
    readings = tmp_path / "two_days.csv"
    readings.write_text("\n".join(lines) + "\n")

    replay(config, readings, echo=quiet, step=timedelta(hours=1))

    versions = [c.version for c in commits_of(open_table(config, "day_cost"))]
    assert len(versions) == 1 + 48  # created, then one commit per hour of event time
    for hour in range(1, 49):
        at = datetime(2024, 2, 10) + timedelta(hours=hour)
        before = tmp_path / f"before_{hour}.csv"
        before.write_text("\n".join(x for x in lines if x < f"{at:%Y-%m-%d %H}") + "\n")
        oracle = compute_answers(before, config.semantics)
        for view in ("q2", "q1", "q4") if hour % 12 in (1, 2) else ("q2",):
            got = query_view(config, view, at=f"{at:%Y-%m-%d %H:%M}")
            want = getattr(oracle, view)
            assert [r[0] for r in got.rows] == list(want.iloc[:, 0]), (hour, view)
            assert [r[1] for r in got.rows] == pytest.approx(
                list(want.iloc[:, 1]), abs=TOLERANCE), (hour, view)
