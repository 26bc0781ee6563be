"""The streaming pipeline against the oracle (`oracle/`), through the real broker.

Each case is a readings file: generated months (several seeds, meter counts and
cadences) and crafted edge cases, all in one file with distinct sensor ids so
one run covers them (sensors are independent; the file keeps each sensor's
arrival order). The oracle is told the micro-batches: one per catch-up. Gold
from the stream must equal the oracle's within 1e-9 kWh and 1e-9 EUR: both sum
the same double-precision pieces, in different orders, so only rounding differs
(about 1e-13 on a month).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meterlake.app.pipeline import run_once
from meterlake.read.answers import query_view
from meterlake.read.connection import connect
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import publish_readings
from oracle import OracleResult, compute_answers
from tests.helpers import TOLERANCE, clock_change_nights
from tests.reliability_helpers import assert_gold_equals_oracle

ALL = ["bronze", "silver", "gold"]

# Crafted cases, one sensor each (line order = arrival order).
EDGE_CASES = {
    "midnight": [("2024-02-03 23:40:00", 100.0), ("2024-02-04 00:20:00", 100.8)],
    "month_end": [("2024-02-29 23:50:00", 5.0), ("2024-03-01 00:10:00", 5.4)],
    "boundaries": [  # every winter tariff boundary, readings exactly on some of them
        (f"2024-02-05 {h}:00", 1000.0 + i * 0.35)
        for i, h in enumerate(
            [
                "01:45",
                "02:00",
                "05:50",
                "06:10",
                "07:59",
                "08:00",
                "08:45",
                "09:15",
                "10:30",
                "10:31",
                "17:59",
                "18:00",
                "20:30",
                "20:45",
                "21:59",
                "22:00",
                "23:59",
            ]
        )
    ],
    "outage": [
        ("2024-02-06 10:00:00", 50.0),
        ("2024-02-08 16:00:00", 70.5),
        ("2024-02-08 16:01:00", 70.51),
    ],
    "once": [("2024-02-06 12:00:00", 777.0)],
    "reset": [
        ("2024-02-06 12:00:00", 9000.0),
        ("2024-02-06 12:05:00", 9000.2),
        ("2024-02-06 12:10:00", 0.5),
        ("2024-02-06 12:15:00", 0.9),
    ],
    "jump": [
        ("2024-02-06 12:00:00", 10.0),
        ("2024-02-06 12:01:00", 25.0),
        ("2024-02-06 12:02:00", 10.1),
        ("2024-02-06 12:03:00", 10.2),
    ],
    "dups": [
        ("2024-02-06 12:00:00", 10.0),
        ("2024-02-06 12:01:00", 10.1),
        ("2024-02-06 12:01:00", 10.1),
        ("2024-02-06 12:01:00", 10.3),
        ("2024-02-06 12:02:00", 10.2),
    ],
    "late": [
        ("2024-02-06 12:00:00", 10.0),
        ("2024-02-06 12:30:00", 10.6),
        ("2024-02-06 12:10:00", 10.1),
        ("2024-02-06 13:00:00", 11.0),
        ("2024-02-06 12:20:00", 10.5),
        ("2024-02-06 11:55:00", 9.9),
        ("2024-02-06 12:45:00", 10.8),
    ],
    "too_late": [
        ("2024-02-06 12:00:00", 10.0),
        ("2024-02-06 14:00:00", 11.0),
        ("2024-02-06 12:59:59", 10.5),
        ("2024-02-06 13:00:00", 10.5),
    ],
    "iso": [
        ("2024-02-07T10:00:00.500", 3.0),
        ("2024-02-07T10:20:00+00:00", 3.2),
        ("2024-02-07T10:40:00Z", 3.5),
    ],
    "one_second": [
        (f"2024-02-07 {9 + s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}", 40.0 + s * 0.0007)
        for s in range(0, 3600)
    ],
    # naive wall-clock time a reading a minute through October's repeated hour and
    # March's skipped one (tests.helpers.clock_change_nights: the half hours by hand)
    **{night: rows for night, (rows, _) in clock_change_nights().items()},
}
GENERATED = [  # (prefix, spec)
    ("g1", MonthSpec(meters=3, days=2, seed=1)),
    ("g2", MonthSpec(meters=2, days=4, seed=2, cadence_s=600)),
    ("g3", MonthSpec(meters=2, days=6, seed=3, cadence_s=1800, jitter_s=300)),
    ("g4", MonthSpec(meters=1, days=1, seed=4, cadence_s=7)),
    # legal-time switches: a 23-hour and a 25-hour day (the repeated hour carries offsets)
    ("g5", MonthSpec(meters=1, days=2, seed=5, cadence_s=300, start="2024-03-30")),
    ("g6", MonthSpec(meters=1, days=2, seed=6, cadence_s=300, start="2024-10-26")),
]


def case_lines(tmp_path: Path) -> list[str]:
    """Every case, the "too_late" one split between the file's first and last lines
    (so that cut into thirds, its late readings come a micro-batch after 14:00)."""
    too_late = [f"{ts};too_late;{energy}" for ts, energy in EDGE_CASES["too_late"]]
    lines: list[str] = too_late[:2]
    for prefix, spec in GENERATED:
        path = tmp_path / f"{prefix}.csv"
        write_readings(spec, path)
        lines += [line.replace(";S", f";{prefix}-S", 1) for line in path.read_text().splitlines()]
    for name, rows in EDGE_CASES.items():
        if name != "too_late":
            lines += [f"{ts};{name};{energy}" for ts, energy in rows]
    return lines + too_late[2:]


def assert_views_equal_oracle(config, oracle: OracleResult) -> None:
    assert_sorted_views_equal_oracle(config, oracle)
    got = query_view(config, "q3", version=None, as_of=None)
    assert got.columns[1:] == list(oracle.q3.columns[1:])
    assert len(got.rows) == len(oracle.q3)


def assert_sorted_views_equal_oracle(config, oracle: OracleResult) -> None:
    for view in ("q1", "q2", "q4"):
        got = query_view(config, view, version=None, as_of=None)
        want = getattr(oracle, view)
        assert [row[0] for row in got.rows] == list(want.iloc[:, 0]), view
        assert [row[1] for row in got.rows] == pytest.approx(list(want.iloc[:, 1]), abs=TOLERANCE)


def quarantine_counts(config) -> dict[str, int]:
    con = connect(config, tables=["quarantine"])
    return dict(con.sql("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall())


def assert_nights_by_hand(config) -> None:
    """Every half hour of the clock-change nights as the rates give it, nothing
    quarantined for those meters."""
    con = connect(config, tables=["halfhour_energy", "quarantine"])
    for night, (_, expected) in clock_change_nights().items():
        rows = con.execute(
            "SELECT strftime(timezone('UTC', period_start), '%Y-%m-%d %H:%M'), energy_kwh "
            "FROM halfhour_energy WHERE sensor_id = ?", [night]).fetchall()
        assert dict(rows) == pytest.approx(expected, abs=TOLERANCE), night
        assert con.execute("SELECT count(*) FROM quarantine WHERE sensor_id = ?",
                           [night]).fetchone() == (0,)


def _publish(config, lines: list[str]) -> None:
    result = publish_readings(config, lines, speedup=0, progress=False)
    assert (result.sent, result.skipped) == (len(lines), 0)


def test_small_cases_equal_the_oracle_whatever_the_batches(
    spark, kafka, config, tmp_path, lake_at
) -> None:
    """On a local lake, and on one in the local S3 store (checkpoints, RocksDB state,
    delta-rs commits and DuckDB's reads all through the store)."""
    config = replace(config, lake=lake_at("lake"))
    lines = case_lines(tmp_path)
    readings = tmp_path / "all.csv"
    readings.write_text("\n".join(lines) + "\n")
    # one catch-up is one micro-batch: judged in timestamp order (semantics §7)
    oracle = compute_answers(readings, config.semantics, batches=[len(lines)])
    assert set(oracle.quarantine_counts) >= {
        "duplicate", "conflicting_duplicate", "implausible_jump", "counter_decrease",
    }  # fmt: skip

    # one catch-up over everything
    _publish(config, lines)
    run_once(spark, config, ALL, echo=lambda _: None)
    assert_gold_equals_oracle(config, oracle)
    assert_views_equal_oracle(config, oracle)
    assert quarantine_counts(config) == oracle.quarantine_counts
    assert_nights_by_hand(config)

    # the same stream cut into three catch-ups
    topic = replace(config.kafka, topic=f"{config.kafka.topic}-cut")
    cut = replace(config, lake=lake_at("cut"), kafka=topic)
    third = len(lines) // 3
    parts = [lines[:third], lines[third : 2 * third], lines[2 * third :]]
    for part in parts:
        _publish(cut, part)
        run_once(spark, cut, ALL, echo=lambda _: None)
    oracle = compute_answers(readings, config.semantics, batches=[len(p) for p in parts])
    assert oracle.quarantine_counts["too_late"] == 1  # 12:59:59, a batch after 14:00
    assert_gold_equals_oracle(cut, oracle)
    assert quarantine_counts(cut) == oracle.quarantine_counts
