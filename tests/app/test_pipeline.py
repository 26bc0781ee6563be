"""End to end through the real broker: Kafka -> bronze -> silver -> gold, `run --once`."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest

from meterlake.app.pipeline import explain_failure, run_once
from tests.helpers import produce, reading_message, table_rows

ALL = ["bronze", "silver", "gold"]

# Two sensors, hand-computed (spec section 3, winter prices):
#   X: 100.0 at Feb 3 23:40 -> 100.8 at Feb 4 00:20 -> 101.1 at 00:50
#      0.4 kWh in 23:30 (Feb 3); 0.4 + 0.1 kWh in 00:00, 0.2 kWh in 00:30 (Feb 4); vazio 0.1072
#   Y: 200.0 at Feb 4 08:50 -> 200.6 at 09:10
#      0.3 kWh cheias 0.1741 in 08:30 + 0.3 kWh ponta 0.2400 in 09:00 = 0.12423 EUR
SMALL = [
    ("2024-02-03 23:40:00", "X", 100.0),
    ("2024-02-04 00:20:00", "X", 100.8),
    ("2024-02-04 08:50:00", "Y", 200.0),
    ("2024-02-04 00:50:00", "X", 101.1),
    ("2024-02-04 09:10:00", "Y", 200.6),
]


def _send(kafka: str, config, rows) -> None:
    produce(kafka, config.kafka.topic, [reading_message(*row) for row in rows])


def _gold(spark, config) -> dict[str, list[tuple]]:
    return {
        "month_energy": table_rows(
            spark, config, "month_energy", "sensor_id", "month", "energy_kwh"
        ),
        "day_energy": table_rows(spark, config, "day_energy", "sensor_id", "day", "energy_kwh"),
        "halfhour_energy": table_rows(
            spark, config, "halfhour_energy", "sensor_id", "period_start", "energy_kwh"
        ),
        "day_cost": table_rows(spark, config, "day_cost", "sensor_id", "day", "cost_eur"),
    }


def _approx(rows: list[tuple]) -> list[tuple]:
    return [(*row[:-1], pytest.approx(row[-1], abs=1e-9)) for row in rows]


EXPECTED = {
    "month_energy": [("X", date(2024, 2, 1), 1.1), ("Y", date(2024, 2, 1), 0.6)],
    "day_energy": [
        ("X", date(2024, 2, 3), 0.4),
        ("X", date(2024, 2, 4), 0.7),
        ("Y", date(2024, 2, 4), 0.6),
    ],
    "halfhour_energy": [
        ("X", datetime(2024, 2, 3, 23, 30), 0.4),
        ("X", datetime(2024, 2, 4, 0, 0), 0.5),
        ("X", datetime(2024, 2, 4, 0, 30), 0.2),
        ("Y", datetime(2024, 2, 4, 8, 30), 0.3),
        ("Y", datetime(2024, 2, 4, 9, 0), 0.3),
    ],
    "day_cost": [
        ("X", date(2024, 2, 3), 0.4 * 0.1072),
        ("X", date(2024, 2, 4), 0.7 * 0.1072),
        ("Y", date(2024, 2, 4), 0.3 * 0.1741 + 0.3 * 0.24),
    ],
}


def test_a_small_file_gives_the_hand_computed_gold_tables(spark, kafka, config) -> None:
    """Also: run_once hands each query it started to `on_start` (what the bench times)."""
    _send(kafka, config, SMALL)
    started = []
    run_once(spark, config, ALL, echo=lambda _: None, on_start=started.append)
    assert [q.name for q in started] == ["bronze", "silver", "gold"]
    assert all(q.recentProgress for q in started)
    gold = _gold(spark, config)
    for table, expected in EXPECTED.items():
        assert gold[table] == _approx(expected), table
    assert table_rows(spark, config, "day_cost", "sensor_id", "day", "as_of")[1] == (
        "X",
        date(2024, 2, 4),
        datetime(2024, 2, 4, 0, 50),
    )


def test_publishing_the_same_messages_twice_changes_no_answer(spark, kafka, config) -> None:
    _send(kafka, config, SMALL)
    run_once(spark, config, ALL, echo=lambda _: None)
    first = _gold(spark, config)
    _send(kafka, config, SMALL)
    run_once(spark, config, ALL, echo=lambda _: None)
    assert _gold(spark, config) == first
    # X's 23:40 is now 70 min behind X's latest (00:50): too late; the rest are duplicates
    assert table_rows(spark, config, "quarantine", "reason") == [("duplicate",)] * 4 + [
        ("too_late",)
    ]
    assert len(table_rows(spark, config, "bronze", "offset", "partition")) == 2 * len(SMALL)


def test_a_shuffled_stream_within_the_lateness_gives_the_same_answers(spark, kafka, config) -> None:
    rows = [
        (f"2024-02-10 {m // 60:02d}:{m % 60:02d}:{m * 7 % 60:02d}", s, 500.0 + i + m * 0.004)
        for i, s in enumerate("ABC")
        for m in range(0, 180, 3)
    ]
    # shuffled within each clock hour, so no reading arrives more than 1 h late
    shuffled = sorted(rows, key=lambda r: (r[0][:13], random.Random(r[0] + r[1]).random()))
    _send(kafka, config, sorted(rows))
    run_once(spark, config, ALL, echo=lambda _: None)
    in_order = _gold(spark, config)
    from dataclasses import replace

    other = replace(
        config,
        lake=config.lake.parent / "lake2",
        kafka=replace(config.kafka, topic=config.kafka.topic + "-shuffled"),
    )
    _send(kafka, other, shuffled)  # shuffled within each hour: at most 1 h late
    run_once(spark, other, ALL, echo=lambda _: None)
    out_of_order = _gold(spark, other)
    for table in in_order:
        assert [r[:-1] for r in out_of_order[table]] == [r[:-1] for r in in_order[table]]
        assert out_of_order[table] == _approx(in_order[table])
    assert table_rows(spark, other, "quarantine", "reason") == []


BAD = [  # (key, raw value, expected reason)
    (None, b"not json at all", "malformed_json"),
    (None, b"\x00\x01\x02\xff binary", "malformed_json"),
    (None, b"", "malformed_json"),
    (b"X", b'["2024-02-04 01:00:00", "X", 1.0]', "malformed_json"),
    (
        b"X",
        b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X", "energy": 1, "energy": 2}',
        "malformed_json",
    ),
    (b"X", b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X"}', "missing_field"),
    (b"X", b'{"timestamp": null, "sensor_id": "X", "energy": 101.2}', "missing_field"),
    (
        None,
        b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "", "energy": 1.0}',
        "bad_sensor_id",
    ),
    (
        None,
        b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": 42, "energy": 1.0}',
        "bad_sensor_id",
    ),
    (
        b"X",
        b'{"timestamp": "04/02/2024 01:00", "sensor_id": "X", "energy": 101.2}',
        "bad_timestamp",
    ),
    (
        b"X",
        b'{"timestamp": "1970-01-01 00:00:00", "sensor_id": "X", "energy": 101.2}',
        "bad_timestamp",
    ),
    (
        b"X",
        b'{"timestamp": "2100-01-01 00:00:00", "sensor_id": "X", "energy": 101.2}',
        "bad_timestamp",
    ),
    (
        b"X",
        b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X", "energy": "101.2"}',
        "bad_energy",
    ),
    (b"X", b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X", "energy": NaN}', "bad_energy"),
    (
        b"X",
        b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X", "energy": -Infinity}',
        "bad_energy",
    ),
    (b"X", b'{"timestamp": "2024-02-04 01:00:00", "sensor_id": "X", "energy": -5}', "bad_energy"),
    (b"X", b'{"timestamp": "2024-02-04 00:50:00", "sensor_id": "X", "energy": 101.1}', "duplicate"),
    (
        b"X",
        b'{"timestamp": "2024-02-04 00:50:00", "sensor_id": "X", "energy": 101.3}',
        "conflicting_duplicate",
    ),
    (b"X", b'{"timestamp": "2024-02-03 23:00:00", "sensor_id": "X", "energy": 99.0}', "too_late"),
    (
        b"X",
        b'{"timestamp": "2024-02-04 00:51:00", "sensor_id": "X", "energy": 999.0}',
        "implausible_jump",
    ),
]


def test_bad_messages_land_in_quarantine_with_their_reason_and_bronze_keeps_all(
    spark, kafka, config
) -> None:
    _send(kafka, config, SMALL)
    late = [(key, value) for key, value, reason in BAD if reason == "too_late"]
    produce(kafka, config.kafka.topic, [(k, v) for k, v, r in BAD if r != "too_late"])
    run_once(spark, config, ALL, echo=lambda _: None)
    # too_late is measured against what silver accepted before the batch (semantics §7)
    produce(kafka, config.kafka.topic, late)
    run_once(spark, config, ALL, echo=lambda _: None)
    assert len(table_rows(spark, config, "bronze", "partition", "offset")) == len(SMALL) + len(BAD)
    quarantined = table_rows(spark, config, "quarantine", "value", "reason")
    assert sorted((bytes(v), r) for v, r in quarantined) == sorted((v, r) for _, v, r in BAD)
    coordinates = table_rows(spark, config, "quarantine", "topic", "partition", "offset")
    assert all(t == config.kafka.topic and None not in (p, o) for t, p, o in coordinates)
    assert _gold(spark, config) == {t: _approx(rows) for t, rows in EXPECTED.items()}


def test_time_travel_shows_the_answer_before_later_readings(spark, kafka, config) -> None:
    from meterlake.read.answers import query_view
    from meterlake.read.history import history

    _send(kafka, config, SMALL)
    run_once(spark, config, ALL, echo=lambda _: None)
    before = query_view(config, "q2", version=None, as_of=None)
    _send(kafka, config, [("2024-02-04 09:40:00", "Y", 201.0), ("2024-02-04 01:20:00", "X", 101.3)])
    run_once(spark, config, ALL, echo=lambda _: None)
    after = query_view(config, "q2", version=None, as_of=None)
    assert after.rows == [("Y", pytest.approx(1.0)), ("X", pytest.approx(0.9))]
    versions = sorted(row[0] for row in history(config, "day_energy").rows)
    earlier = query_view(config, "q2", version=versions[-2], as_of=None)
    assert earlier.rows == before.rows == [("X", pytest.approx(0.7)), ("Y", pytest.approx(0.6))]


def test_silver_follows_bronze_side_by_side(spark, kafka, config, monkeypatch) -> None:
    """run_once starts bronze and silver together: silver judges bronze's batches as
    bronze commits them, so it takes more than one batch (bronze's five files, read
    after bronze ended, would be one batch of `bronze_bytes_per_trigger`), and its first
    begins before bronze's last; silver ends after bronze, gold after silver; silver's
    progress gets its total once bronze ended; the hand-computed answers."""
    import io
    import time
    from dataclasses import replace
    from functools import partial

    from meterlake.core.progress import Progress

    one_each = replace(config, streams=replace(config.streams, max_offsets_per_trigger=1),
                       progress=replace(config.progress, every_s=0))
    _send(kafka, config, SMALL)
    # Bronze's batches slowed to most of a second each (its foreachBatch runs in this
    # process): five of them leave silver's 250 ms trigger time to follow.
    import bronze.job

    horizon = bronze.job.Horizons.next
    monkeypatch.setattr(bronze.job.Horizons, "next",
                        lambda *a: (time.sleep(0.8), horizon(*a))[1])
    started, shown = [], io.StringIO()
    ended = run_once(spark, one_each, ALL, echo=lambda _: None, on_start=started.append,
                     progress=partial(Progress, stream=shown, tty=False))
    batches = {q.name: [p for p in q.recentProgress if p["numInputRows"]] for q in started}
    assert len(batches["bronze"]) == len(SMALL)
    assert len(batches["silver"]) >= 2
    assert batches["silver"][0]["timestamp"] < batches["bronze"][-1]["timestamp"]
    assert sum(p["numInputRows"] for p in batches["silver"]) == len(SMALL)
    assert ended["bronze"] <= ended["silver"] <= ended["gold"]
    # silver's total is known once bronze ended: its last line counts 5 of 5
    silver_lines = [x for x in shown.getvalue().splitlines() if x.startswith("silver:")]
    assert silver_lines[-1].startswith("silver: 5 of 5 rows (100%)")
    assert _gold(spark, config) == {t: _approx(rows) for t, rows in EXPECTED.items()}


def test_silver_rebuilt_from_bronze_gives_the_same_answers(spark, kafka, config) -> None:
    """`[streams] silver_source = "bronze"` (the default): silver reads the raw
    landing, not the topic, following bronze in a catch-up; the same hand-computed
    gold. With "kafka", silver reads the topic beside bronze, following nobody; gold
    catches up after them in either case."""
    from dataclasses import replace

    from meterlake.app.pipeline import followed, stages

    assert stages(ALL) == [["bronze", "silver"], ["gold"]]
    assert stages(["silver", "gold"]) == [["silver"], ["gold"]]
    from_bronze = replace(config, streams=replace(config.streams, silver_source="bronze"))
    assert followed(from_bronze, ["bronze", "silver"]) == {"silver": "bronze"}
    assert followed(from_bronze, ["silver", "gold"]) == {"gold": "silver"}
    on_topic = replace(config, streams=replace(config.streams, silver_source="kafka"))
    assert followed(on_topic, ["bronze", "silver"]) == {}
    _send(kafka, config, SMALL)
    run_once(spark, from_bronze, ["bronze"], echo=lambda _: None)
    # Silver and gold told of another topic, an empty one: only bronze has the readings.
    elsewhere = replace(from_bronze, kafka=replace(config.kafka, topic=config.kafka.topic + "-x"))
    for layer in ("silver", "gold"):
        run_once(spark, elsewhere, [layer], echo=lambda _: None)
    assert _gold(spark, config) == {t: _approx(rows) for t, rows in EXPECTED.items()}


def test_a_replayed_gold_batch_changes_nothing(spark, kafka, config) -> None:
    """Spark re-runs a batch after a crash between the Delta commits and its own
    commit log: each table's commit carries the batch as its txn version, and a table
    already at that batch is skipped."""
    from gold.job import GoldWriter

    _send(kafka, config, SMALL)
    run_once(spark, config, ALL, echo=lambda _: None)
    pieces = spark.read.format("delta").load(str(config.table_path("silver")))
    write = GoldWriter(config)  # a restarted driver: the tables opened afresh
    write(pieces, 0)  # batch 0 of this checkpoint was committed already
    assert _gold(spark, config) == {t: _approx(rows) for t, rows in EXPECTED.items()}
    write(pieces, 1)  # a new batch id is applied: the pieces are added once more
    doubled = [(*row[:-1], 2 * row[-1]) for row in EXPECTED["day_energy"]]
    assert _gold(spark, config)["day_energy"] == _approx(doubled)


def test_the_command_line_replays_a_file_and_prints_the_answers(kafka, config, tmp_path) -> None:
    import subprocess
    import sys

    readings = tmp_path / "small.csv"
    readings.write_text("".join(f"{ts};{s};{e}\n" for ts, s, e in SMALL))
    cli = [sys.executable, "-m", "meterlake", "--lake", str(config.lake), "--bootstrap", kafka]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=600)

    replayed = run("replay", str(readings))
    assert replayed.returncode == 0, replayed.stderr
    assert "Q4 cost today" in replayed.stdout
    q4 = run("query", "q4", "--format", "csv")
    assert q4.stdout.splitlines()[0] == "sensor_id,cost_eur"
    rows = [line.split(",") for line in q4.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["Y", "X"]
    assert [float(r[1]) for r in rows] == pytest.approx([0.12423, 0.7 * 0.1072], abs=1e-9)
    q3 = run("query", "q3", "--format", "csv")
    assert q3.stdout.splitlines()[0] == "period_start,X,Y"
    again = run("replay", str(readings))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "is not empty" in again.stderr
    bad = run("sql", "DROP TABLE day_cost")
    assert bad.returncode == 1 and bad.stderr.startswith("meterlake: error:")
    assert "Traceback" not in bad.stderr


def test_no_table_the_pipeline_creates_compacts_inside_a_batch(spark, kafka, config) -> None:
    """Streams leave many small files; the pipeline compacts them on a schedule
    (meterlake.core.compaction, tests/core/test_compaction.py), so Delta's inline auto compaction
    is off on every table, and a table an older version created with it on gets it off
    on the next start."""
    from delta.tables import DeltaTable

    from meterlake.core.catalog import QUERY_TABLES
    from meterlake.core.tables import TABLE_PROPERTIES

    def properties(table: str) -> dict[str, str]:
        detail = DeltaTable.forPath(spark, str(config.table_path(table))).detail()
        return detail.select("properties").first()[0]

    _send(kafka, config, SMALL)
    run_once(spark, config, ALL, echo=lambda _: None)
    tables = [t for written in QUERY_TABLES.values() for t in written] + ["data_loss"]
    for table in tables:
        assert properties(table)["delta.autoOptimize.autoCompact"] == "false", table

    spark.sql(
        f"ALTER TABLE delta.`{config.table_path('readings').resolve()}` "
        "SET TBLPROPERTIES ('delta.autoOptimize.autoCompact' = 'true')"
    )
    run_once(spark, config, ["silver"], echo=lambda _: None)
    assert properties("readings").items() >= TABLE_PROPERTIES.items()


def test_a_failure_inside_foreach_batch_is_named_by_its_cause_in_one_line():
    text = (
        "[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: "
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function "
        "in foreach batch sink. Reason: An exception was raised by the Python Proxy. Return "
        "Message: Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "pyspark.errors.exceptions.captured.SparkException: [FAILED_READ_FILE.FILE_NOT_EXIST] "
        "Encountered error while reading file /lake/silver/part-0.parquet. SQLSTATE: 42K03\n"
        "  at org.apache.spark.Foo"
    )
    assert explain_failure("silver", text) == (
        "silver failed: [FAILED_READ_FILE.FILE_NOT_EXIST] Encountered error while reading file "
        "/lake/silver/part-0.parquet."
    )
    plain = "[STREAM_FAILED] Query [id = 1] terminated with exception: [BOOM] it broke"
    assert explain_failure("bronze", plain) == "bronze failed: [BOOM] it broke"


def test_the_cli_drops_py4j_tracebacks_and_keeps_other_log_records():
    import logging

    from meterlake.app.cli import _not_from_py4j

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.ERROR, path, 1, "boom", None, None)

    assert not _not_from_py4j(record("/venv/lib/python3.11/site-packages/py4j/clientserver.py"))
    assert _not_from_py4j(record("/work/meterlake/app/pipeline.py"))
