"""gold.answers and gold.job on a few hand-made rows: increments per answer, the
rows of a touched partition before -> after, and the write to a real Delta table
(delta-rs), once per batch."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from gold.answers import ANSWERS, UTC_MICROS
from gold.job import add_increments
from meterlake.core import commits
from meterlake.core.commits import BatchWriter


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Period sums of one batch (what gold.answers.period_sums gives Spark-side): sensor X
# in two periods of Feb 3 and one of Feb 4, Y in one period of Feb 4 with a
# retraction summed in (-0.1 kWh).
SUMS = pa.table(
    {
        "sensor_id": ["X", "X", "X", "Y"],
        "month": [date(2024, 2, 1)] * 4,
        "day": [date(2024, 2, 3), date(2024, 2, 3), date(2024, 2, 4), date(2024, 2, 4)],
        "period_start": pa.array(
            [_utc("2024-02-03 22:00"), _utc("2024-02-03 22:30"), _utc("2024-02-04 00:00"),
             _utc("2024-02-04 08:30")], UTC_MICROS),
        "kwh": [0.5, 0.25, 1.0, -0.1],
        "cost_eur": [0.05, 0.025, 0.1072, -0.01741],
        "as_of": pa.array(
            [_utc("2024-02-03 22:20"), _utc("2024-02-03 22:50"), _utc("2024-02-04 00:20"),
             _utc("2024-02-04 08:50")], UTC_MICROS),
    }
)


def _rows(table: pa.Table, *columns: str) -> list[tuple]:
    return sorted(zip(*(table[c].to_pylist() for c in columns), strict=True))


def test_each_answer_sums_the_batch_over_its_own_key() -> None:
    month = ANSWERS["month_energy"].increments(SUMS)
    assert _rows(month, "sensor_id", "month", "energy_kwh", "as_of") == [
        ("X", date(2024, 2, 1), 1.75, _utc("2024-02-04 00:20")),
        ("Y", date(2024, 2, 1), -0.1, _utc("2024-02-04 08:50")),
    ]
    day = ANSWERS["day_energy"].increments(SUMS)
    assert _rows(day, "sensor_id", "day", "energy_kwh") == [
        ("X", date(2024, 2, 3), 0.75), ("X", date(2024, 2, 4), 1.0), ("Y", date(2024, 2, 4), -0.1)]
    cost = ANSWERS["day_cost"].increments(SUMS)
    assert _rows(cost, "sensor_id", "day", "cost_eur") == [
        ("X", date(2024, 2, 3), pytest.approx(0.075)), ("X", date(2024, 2, 4), 0.1072),
        ("Y", date(2024, 2, 4), -0.01741)]
    halfhours = ANSWERS["halfhour_energy"].increments(SUMS)
    assert halfhours.num_rows == 4 and halfhours.schema == pa.schema(
        [("sensor_id", pa.string()), ("day", pa.date32()), ("period_start", UTC_MICROS),
         ("energy_kwh", pa.float64()), ("as_of", UTC_MICROS)])


def test_adding_keeps_untouched_keys_grows_touched_ones_and_inserts_new_ones() -> None:
    answer = ANSWERS["day_energy"]
    then, now = _utc("2024-02-04 07:00"), _utc("2024-02-04 09:00")
    current = pa.table(
        {"sensor_id": ["X", "Z"], "day": [date(2024, 2, 4)] * 2, "energy_kwh": [2.0, 3.0],
         "as_of": pa.array([_utc("2024-02-04 06:00"), _utc("2024-02-04 06:30")], UTC_MICROS),
         "updated_at": pa.array([then, then], UTC_MICROS)},
        schema=answer.arrow_schema,
    )
    increments = answer.increments(SUMS.filter(pa.compute.field("day") == date(2024, 2, 4)))
    after = answer.add(current, increments, now)
    assert after.schema == answer.arrow_schema
    assert _rows(after, "sensor_id", "energy_kwh", "as_of", "updated_at") == [
        ("X", 3.0, _utc("2024-02-04 06:00"), now),  # as_of stays the later one, not 00:20
        ("Y", -0.1, _utc("2024-02-04 08:50"), now),  # new key
        ("Z", 3.0, _utc("2024-02-04 06:30"), then),  # untouched: as it was
    ]


def _empty_table(path: str, name: str) -> None:
    answer = ANSWERS[name]
    write_deltalake(path, answer.arrow_schema.empty_table(), partition_by=[answer.partition])


def test_a_batch_rewrites_the_partitions_it_touches_and_records_its_batch(tmp_path) -> None:
    answer = ANSWERS["day_energy"]
    path = str(tmp_path / "day_energy")
    _empty_table(path, "day_energy")
    writer = BatchWriter(tmp_path / "checkpoint")
    first = answer.increments(SUMS.filter(pa.compute.field("day") == date(2024, 2, 3)))
    assert add_increments(writer, path, answer, [first], "day_energy-q", 0)
    assert add_increments(writer, path, answer, [answer.increments(SUMS)], "day_energy-q", 1)
    assert not add_increments(writer, path, answer, [first], "day_energy-q", 0)  # a replay
    table = DeltaTable(path)
    assert table.transaction_version("day_energy-q") == 1
    assert table.version() == 2
    rows = _rows(table.to_pyarrow_table(), "sensor_id", "day", "energy_kwh")
    assert rows == [("X", date(2024, 2, 3), 1.5), ("X", date(2024, 2, 4), 1.0),
                    ("Y", date(2024, 2, 4), -0.1)]
    # Batch 1's commit removed Feb 3's file (batch 0's) and wrote one file per day.
    files = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    assert sorted(files["partition.day"]) == [date(2024, 2, 3), date(2024, 2, 4)]
    log = (tmp_path / "day_energy" / "_delta_log" / f"{2:020d}.json").read_text()
    assert log.count('"remove"') == 1 and log.count('"add"') == 2


def test_period_sums_add_the_pieces_of_a_batch_per_sensor_and_period(spark) -> None:
    """Five static silver pieces -> gold.answers.period_sums (Spark), then each
    answer's increments (Arrow), by hand: X has two pieces of 22:00 (one a
    retraction), one of 22:30; Y one of 22:00 on its own."""
    from gold.answers import period_sums
    from silver.job import PIECES_SCHEMA

    def piece(sensor, period, kwh, cost, end, sign=1):
        return (sensor, _utc(f"2024-02-03 {period}"), date(2024, 2, 3), date(2024, 2, 1),
                "vazio", 0.1, kwh, cost, None, _utc(f"2024-02-03 {end}"), sign, "energy", 0, 0,
                None)

    pieces = spark.createDataFrame([
        piece("X", "22:00", 0.25, 0.025, "22:20"),
        piece("X", "22:00", -0.05, -0.005, "22:10", sign=-1),
        piece("X", "22:30", 0.5, 0.05, "22:40"),
        piece("Y", "22:00", 1.0, 0.1, "22:30"),
        piece("Y", "22:00", 0.0, 0.0, "22:25"),  # a reset: the interval counts 0
    ], PIECES_SCHEMA)
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the frame's times read as UTC
    try:
        sums = pa.Table.from_pandas(period_sums(pieces).toPandas(), preserve_index=False)
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    rows = {(r["sensor_id"], r["period_start"].strftime("%H:%M")): r
            for r in sums.to_pylist()}
    assert set(rows) == {("X", "22:00"), ("X", "22:30"), ("Y", "22:00")}
    assert rows["X", "22:00"]["kwh"] == pytest.approx(0.20)
    assert rows["X", "22:00"]["cost_eur"] == pytest.approx(0.020)
    assert rows["X", "22:00"]["as_of"].strftime("%H:%M") == "22:20"
    assert rows["Y", "22:00"]["kwh"] == pytest.approx(1.0)
    assert rows["Y", "22:00"]["as_of"].strftime("%H:%M") == "22:30"
    month = ANSWERS["month_energy"].increments(sums.cast(pa.schema(
        [(f.name, UTC_MICROS if f.name in ("period_start", "as_of") else f.type)
         for f in sums.schema])))
    totals = dict(zip(month["sensor_id"].to_pylist(), month["energy_kwh"].to_pylist(),
                      strict=True))
    assert totals == pytest.approx({"X": 0.70, "Y": 1.0})


def test_month_plan_cost_prices_the_batch_under_every_plan() -> None:
    """X: 1.75 kWh in vazio periods of Saturday night and Sunday 00:00; Y: -0.1 kWh (a
    retraction) in Sunday 08:30, cheias on the daily cycle, vazio on a weekly Sunday."""
    from gold.answers import priced_by_plans
    from tests.helpers import tariff

    plans = tariff()
    priced = priced_by_plans(SUMS, plans)
    assert priced.num_rows == SUMS.num_rows * len(plans.names)
    month = ANSWERS["month_plan_cost"].increments(priced)
    got = {(s, p): c for s, p, c in zip(*(month[k].to_pylist() for k in (
        "sensor_id", "plan", "cost_eur")), strict=True)}  # fmt: skip
    assert len(got) == 2 * len(plans.names)
    assert got[("X", "su-tri-diario")] == pytest.approx(1.75 * 0.1072, abs=1e-12)
    assert got[("X", "erse-simples")] == pytest.approx(1.75 * 0.16, abs=1e-12)
    assert got[("X", "erse-tri-diario")] == pytest.approx(1.75 * 0.105, abs=1e-12)
    assert got[("Y", "su-tri-diario")] == pytest.approx(-0.01741, abs=1e-12)
    assert got[("Y", "erse-tri-semanal")] == pytest.approx(-0.0105, abs=1e-12)
    assert got[("Y", "erse-bi-diario")] == pytest.approx(-0.02, abs=1e-12)
    assert set(month["month"].to_pylist()) == {date(2024, 2, 1)}


def test_a_batch_rewrites_only_the_half_hours_it_touches_of_a_day(tmp_path) -> None:
    """halfhour_energy's rows are rewritten by (day, period_start): the day's other half
    hours, in the same file, stay as they were, and new keys join them."""
    answer = ANSWERS["halfhour_energy"]
    path = str(tmp_path / "halfhour_energy")
    _empty_table(path, "halfhour_energy")
    writer = BatchWriter(tmp_path / "checkpoint")
    assert add_increments(writer, path, answer, [answer.increments(SUMS)], "q3-q", 0)
    before = {(r["sensor_id"], r["period_start"]): r["updated_at"]
              for r in DeltaTable(path).to_pyarrow_table().to_pylist()}
    later = pa.table({
        "sensor_id": ["X", "Z"], "month": [date(2024, 2, 1)] * 2,
        "day": [date(2024, 2, 3), date(2024, 2, 4)],
        "period_start": pa.array([_utc("2024-02-03 22:30"), _utc("2024-02-04 08:30")],
                                 UTC_MICROS),
        "kwh": [0.25, 2.0], "cost_eur": [0.0, 0.0],
        "as_of": pa.array([_utc("2024-02-03 22:55"), _utc("2024-02-04 08:45")], UTC_MICROS),
    })
    assert add_increments(writer, path, answer, [answer.increments(later)], "q3-q", 1)
    after = DeltaTable(path).to_pyarrow_table()
    assert _rows(after, "sensor_id", "day", "period_start", "energy_kwh", "as_of") == [
        ("X", date(2024, 2, 3), _utc("2024-02-03 22:00"), 0.5, _utc("2024-02-03 22:20")),
        ("X", date(2024, 2, 3), _utc("2024-02-03 22:30"), 0.5, _utc("2024-02-03 22:55")),
        ("X", date(2024, 2, 4), _utc("2024-02-04 00:00"), 1.0, _utc("2024-02-04 00:20")),
        ("Y", date(2024, 2, 4), _utc("2024-02-04 08:30"), -0.1, _utc("2024-02-04 08:50")),
        ("Z", date(2024, 2, 4), _utc("2024-02-04 08:30"), 2.0, _utc("2024-02-04 08:45")),
    ]
    stamps = {(r["sensor_id"], r["period_start"]): r["updated_at"] for r in after.to_pylist()}
    untouched = [("X", _utc("2024-02-03 22:00")), ("X", _utc("2024-02-04 00:00")),
                 ("Y", _utc("2024-02-04 08:30"))]
    assert [stamps[k] for k in untouched] == [before[k] for k in untouched]
    assert stamps[("X", _utc("2024-02-03 22:30"))] > before[("X", _utc("2024-02-03 22:30"))]


def _files(path: str) -> dict[str, tuple[datetime, datetime]]:
    """Each data file of the table -> the first and last half hour it holds."""
    adds = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    return {p: (lo, hi) for p, lo, hi in zip(adds["path"].to_pylist(),
                                              adds["min.period_start"].to_pylist(),
                                              adds["max.period_start"].to_pylist(), strict=True)}


def test_a_rewrite_of_a_half_hour_copies_no_file_of_the_days_other_half_hours(
        tmp_path, monkeypatch) -> None:
    """halfhour_energy is written sorted by half hour, in files cut by size: a batch
    touching the day's last half hour rewrites the file holding it and leaves the
    others as they are (delta-rs copied the whole day's file on every such batch: 4.8
    million rows for 100,000 meters at the start of each day)."""
    monkeypatch.setattr(commits, "CUT_FILE_BYTES", 1)  # delta-rs then cuts every 1,024 rows
    answer = ANSWERS["halfhour_energy"]
    path = str(tmp_path / "halfhour_energy")
    _empty_table(path, "halfhour_energy")
    writer = BatchWriter(tmp_path / "checkpoint")
    day, meters = date(2024, 2, 3), [f"m{i:04d}" for i in range(1024)]
    halves = [_utc("2024-02-03 22:30"), _utc("2024-02-03 23:00"), _utc("2024-02-03 23:30")]
    count = len(meters) * len(halves)
    # Meter by meter, so that a file cut by count alone would mix the half hours.
    day_sums = pa.table({
        "sensor_id": [m for m in meters for _ in halves],
        "month": [date(2024, 2, 1)] * count, "day": [day] * count,
        "period_start": pa.array(halves * len(meters), UTC_MICROS),
        "kwh": [1.0] * count, "cost_eur": [0.0] * count,
        "as_of": pa.array([_utc("2024-02-03 23:55")] * count, UTC_MICROS),
    })
    assert add_increments(writer, path, answer, [answer.increments(day_sums)], "q3-q", 0)
    before = _files(path)
    assert sorted(before.values()) == [(h, h) for h in halves]
    late = pa.table({
        "sensor_id": ["m0007", "new"], "month": [date(2024, 2, 1)] * 2, "day": [day] * 2,
        "period_start": pa.array([halves[2]] * 2, UTC_MICROS),
        "kwh": [0.5, 2.0], "cost_eur": [0.0, 0.0],
        "as_of": pa.array([_utc("2024-02-04 00:10")] * 2, UTC_MICROS),
    })
    assert add_increments(writer, path, answer, [answer.increments(late)], "q3-q", 1)
    after = _files(path)
    kept = {p for p, span in before.items() if span[0] < halves[2]}
    assert len(kept) == 2 and kept <= set(after)
    assert {after[p] for p in set(after) - kept} == {(halves[2], halves[2])}
    rows = DeltaTable(path).to_pyarrow_table()
    energy = {(r["sensor_id"], r["period_start"]): r["energy_kwh"] for r in rows.to_pylist()}
    assert len(energy) == count + 1
    assert energy[("m0007", halves[2])] == 1.5 and energy[("new", halves[2])] == 2.0
    assert energy[("m0007", halves[1])] == 1.0 and energy[("m0008", halves[2])] == 1.0
