"""Unkeyed producers, through the real broker: gold does not depend on partitioning.

The course's publisher sends the JSON value without a key, so one sensor's
readings land on all three partitions of the topic and a micro-batch holds them
partition by partition. Each case is published without a key (round robin, or in
sticky chunks of 200 messages a partition, or by the client's own partitioner
through `publish --no-key`), run through bronze, silver and gold, and checked
against the oracle (`oracle/`) told which lines each micro-batch held.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meterlake.app.pipeline import run_once
from meterlake.read.answers import query_view
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import publish_file, publish_readings
from oracle import compute_answers
from tests.e2e.test_equivalence import (
    assert_sorted_views_equal_oracle,
    assert_views_equal_oracle,
    case_lines,
    quarantine_counts,
)
from tests.reliability_helpers import assert_gold_equals_oracle, frame, gold

ALL = ["bronze", "silver", "gold"]
PARTITIONS = 3


def round_robin(n: int) -> int:
    return n % PARTITIONS


def sticky_chunks(n: int) -> int:
    return n // 200 % PARTITIONS


def _lines(tmp_path: Path) -> list[str]:
    # Not "dups": its conflicting repeat is decided by partition, then offset (§7),
    # which a file's line order cannot say.
    return [line for line in case_lines(tmp_path) if ";dups;" not in line]


def _publish(config, lines: list[str], partition_of) -> None:
    result = publish_readings(
        config, lines, speedup=0, progress=False, keyed=False, partition_of=partition_of
    )
    assert (result.sent, result.skipped) == (len(lines), 0)


@pytest.mark.parametrize(
    ("spread", "lake_at"),
    [(round_robin, "local"), (sticky_chunks, "local"), (round_robin, "s3")],
    indirect=["lake_at"],
)
def test_small_cases_unkeyed_equal_the_oracle(
    spark, kafka, config, tmp_path, spread, lake_at
) -> None:
    """Round robin and sticky chunks on a local lake; round robin on the local S3 store."""
    config = replace(config, lake=lake_at("lake"))
    lines = _lines(tmp_path)
    path = tmp_path / "all.csv"
    path.write_text("\n".join(lines))
    # one catch-up: one micro-batch, judged in timestamp order
    _publish(config, lines, spread)
    said: list[str] = []
    run_once(spark, config, ALL, echo=said.append)
    oracle = compute_answers(path, config.semantics, batches=[len(lines)])
    assert_gold_equals_oracle(config, oracle)
    assert_views_equal_oracle(config, oracle)
    assert any(line.startswith("silver: ") and "quarantined (" in line for line in said)

    # the same stream in three catch-ups: three micro-batches
    cut = replace(config, lake=lake_at("cut"),
                  kafka=replace(config.kafka, topic=f"{config.kafka.topic}-cut"))  # fmt: skip
    third = len(lines) // 3
    parts = [lines[:third], lines[third : 2 * third], lines[2 * third :]]
    for part in parts:
        _publish(cut, part, spread)
        run_once(spark, cut, ALL, echo=lambda _: None)
    oracle = compute_answers(path, cut.semantics, batches=[len(p) for p in parts])
    assert_gold_equals_oracle(cut, oracle)


def _edge_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        # the spec's worked examples (§3)
        "examples.csv": "2024-02-03 23:40:00;X;100.0\n2024-02-04 00:20:00;X;100.8\n"
        "2024-02-04 08:50:00;Y;200.0\n2024-02-04 09:10:00;Y;200.6\n",
        # readings exactly on half-hour edges, and a few seconds off them
        "edges.csv": "".join(
            f"2024-02-05 {h:02d}:{m:02d}:{s:02d};E;{1000 + i * 0.7:.1f}\n"
            for i, (h, m, s) in enumerate(
                [
                    (7, 30, 0),
                    (8, 0, 0),
                    (8, 30, 0),
                    (8, 59, 54),
                    (9, 0, 24),
                    (9, 28, 54),
                    (9, 30, 0),
                    (10, 0, 0),
                ]
            )
        ),
        # five readings, no trailing newline
        "five.csv": "2024-02-06 10:00:00;F;500.0\n2024-02-06 10:10:00;F;502.5\n"
        "2024-02-06 10:20:00;F;505.0\n2024-02-06 10:30:00;F;507.0\n2024-02-06 10:40:00;F;510.0",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text)
    return paths


def test_edge_files_published_without_a_key(spark, kafka, config, tmp_path) -> None:
    paths = _edge_files(tmp_path)
    lines = [line for p in paths.values() for line in p.read_text().splitlines()]
    for path in paths.values():  # `meterlake publish --no-key`: the client's partitioner
        assert publish_file(config, path, speedup=0, keyed=False).sent > 0
    run_once(spark, config, ALL, echo=lambda _: None)
    together = tmp_path / "together.csv"
    together.write_text("\n".join(lines))
    oracle = compute_answers(together, config.semantics, batches=[len(lines)])
    assert_gold_equals_oracle(config, oracle)
    assert_sorted_views_equal_oracle(config, oracle)
    # hand-computed: the spec's sensor Y costs 0.3 x 0.1741 + 0.3 x 0.2400 on Feb 4;
    # F, today: 7 kWh of ponta (to 10:30), then 3 kWh of cheias
    cost = {row.sensor_id: row.cost_eur for row in gold(config, "day_cost").itertuples()}
    assert cost["Y"] == pytest.approx(0.12423, abs=1e-12)
    q4 = dict(query_view(config, "q4", version=None, as_of=None).rows)
    assert q4["F"] == pytest.approx(7.0 * 0.24 + 3.0 * 0.1741, abs=1e-12)


def test_a_file_rising_by_hundreds_of_kwh_is_said_out_loud(spark, kafka, config, tmp_path):
    # 300 kWh a half hour (600 kW) against the default max_power_kw of 50 kW
    rows = [f"2024-02-06 {10 + i // 2:02d}:{30 * (i % 2):02d}:00;A;{1000 + 300 * i}"
            for i in range(5)]  # fmt: skip
    said: list[str] = []
    _publish(config, rows, round_robin)
    run_once(spark, config, ALL, echo=said.append)
    assert "silver: 1 readings accepted; 4 quarantined (implausible_jump 4); by sensor: A 4" in said
    assert (
        "warning: A: 4 of 5 readings quarantined as implausible_jump (max_power_kw = 50 kW); "
        "see [semantics] max_power_kw, or --set semantics.max_power_kw=VALUE"
    ) in said

    # the setting it names decides it: 600 kW is plausible under 5000 kW
    roomy = replace(config, lake=tmp_path / "roomy",
                    kafka=replace(config.kafka, topic=f"{config.kafka.topic}-roomy"),
                    semantics=replace(config.semantics, max_power_kw=5000.0))  # fmt: skip
    said.clear()
    _publish(roomy, rows, round_robin)
    run_once(spark, roomy, ALL, echo=said.append)
    assert "silver: 5 readings accepted; nothing quarantined" in said
    assert dict(query_view(roomy, "q2", version=None, as_of=None).rows) == {"A": 1200.0}


@pytest.mark.slow(minutes=1.7)
def test_the_default_month_keyed_and_unkeyed_equals_the_oracle(spark, kafka, config, tmp_path):
    """The default month in one topic, one run: six meters' readings keyed by sensor (one
    partition each, in order), the other five's without a key (each meter's readings
    on every partition). Sensors are independent, so one run checks both ways."""
    readings = tmp_path / "month.csv"
    write_readings(MonthSpec(), readings)
    lines = readings.read_text().splitlines()
    sensors = sorted({line.split(";")[1] for line in lines})
    keyed_sensors = set(sensors[:6])
    keyed = [line for line in lines if line.split(";")[1] in keyed_sensors]
    unkeyed = [line for line in lines if line.split(";")[1] not in keyed_sensors]

    def spread(n: int) -> int:  # a day of round robin, a day of sticky chunks, ...
        return round_robin(n) if n // 7_200 % 2 else sticky_chunks(n)

    # Cut into the default batches (100,000 messages, each partition's share in
    # proportion to its lag), an unkeyed meter's readings on one partition come days
    # after those on another; silver judges each batch only up to its release horizon
    # (bronze.horizon), so the answers are those of one batch, nothing too_late.
    sent = publish_readings(config, keyed, speedup=0, progress=False)
    assert (sent.sent, sent.skipped) == (len(keyed), 0)
    _publish(config, unkeyed, spread)
    run_once(spark, config, ALL, echo=lambda _: None)
    oracle = compute_answers(readings, config.semantics, batches=[len(lines)])
    assert len(sensors) == 11 and len(keyed) > len(unkeyed) > 150_000
    assert_gold_equals_oracle(config, oracle)
    assert_views_equal_oracle(config, oracle)
    assert quarantine_counts(config) == oracle.quarantine_counts
    assert "too_late" not in quarantine_counts(config)
    commits = frame(config, "SELECT count(released_before) AS n FROM bronze", ["bronze"])
    assert commits["n"].item() > len(lines) // config.streams.max_offsets_per_trigger  # cut
