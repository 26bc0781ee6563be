"""Lose data loudly (issue 7, item 3): offsets Kafka removed before bronze read them.

Kafka's retention (or `kafka-delete-records`) advances a partition's log start
offset; whatever bronze had not read below it is gone. By default bronze
stops with one clear line (Spark's failOnDataLoss); with `[streams]
on_data_loss = "record"` it goes on from the oldest offset Kafka still has and
writes the gap to the `data_loss` table. Never silent. The tests advance the
log start with the admin API's DeleteRecords, which is what retention does.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bronze.job import find_gaps
from meterlake.app.pipeline import run_once
from meterlake.core.errors import MeterlakeError
from meterlake.read.sandbox import read_only_sql
from meterlake.tools.generate import MonthSpec, write_readings
from oracle import compute_answers
from tests.helpers import (
    create_topic,
    end_offsets,
    produce,
    quiet,
    reading_lines,
    reading_message,
    write_readings_file,
)
from tests.reliability_helpers import assert_gold_equals_oracle, bronze_coordinates, cli, write_conf

SPEC = MonthSpec(meters=3, days=1, cadence_s=600, seed=11)
LOST = 7  # messages of partition 0 removed from Kafka before bronze read them


def test_find_gaps_compares_planned_offsets_with_the_first_ones_delivered():
    planned = {("t", 0): (10, 20), ("t", 1): (5, 9), ("t", 2): (3, 3), ("t", 3): (0, 4)}
    first_read = {("t", 0): 15, ("t", 1): 5}
    # partition 1 complete; 2 had nothing planned; 3 lost its whole range
    assert find_gaps(planned, first_read) == [("t", 0, 10, 14), ("t", 3, 0, 3)]


def _delete_records(bootstrap: str, topic: str, partition: int, before: int) -> None:
    from kafka import KafkaAdminClient, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = admin.delete_records({TopicPartition(topic, partition): before})
        assert result[TopicPartition(topic, partition)]["low_watermark"] == before
    finally:
        admin.close()


@pytest.mark.slow
def test_lost_offsets_stop_bronze_by_default_and_are_recorded_on_request(
    spark, kafka, config, tmp_path
):
    readings = tmp_path / "readings.csv"
    write_readings(SPEC, readings)
    rows = reading_lines(readings)
    topic = config.kafka.topic
    create_topic(kafka, topic, partitions=2)
    half = len(rows) // 2
    coordinates = produce(kafka, topic, [reading_message(*row) for row in rows[:half]])
    run_once(spark, config, ["bronze"], echo=quiet)
    read = end_offsets(kafka, topic)
    assert len(bronze_coordinates(config)) == half

    coordinates += produce(kafka, topic, [reading_message(*row) for row in rows[half:]])
    cut = read[0] + LOST
    _delete_records(kafka, topic, 0, cut)  # what retention does to unread messages
    lost = {i for i, (p, o) in enumerate(coordinates) if p == 0 and read[0] <= o < cut}
    assert len(lost) == LOST

    # Default: bronze stops, one line that names the partition and says what to do.
    with pytest.raises(MeterlakeError) as error:
        run_once(spark, config, ["bronze"], echo=quiet)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("bronze stopped, data loss: Kafka no longer has messages")
    assert f"{topic}-0" in message
    assert 'on_data_loss = "record"' in message
    assert len(bronze_coordinates(config)) == half  # nothing written, nothing skipped

    # The command line says the same, in one line, and exits 1.
    result = cli(["run", "--once", "--layers", "bronze"], write_conf(tmp_path / "m.toml", config))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "meterlake: error: bronze stopped, data loss"
    )
    assert len(bronze_coordinates(config)) == half

    # On request: go on, record the gap, and the answers are those of what survived.
    record = replace(config, streams=replace(config.streams, on_data_loss="record"))
    run_once(spark, record, ["bronze", "silver", "gold"], echo=quiet)
    bronze = bronze_coordinates(config)
    assert not bronze.duplicated(["partition", "offset"]).any()
    assert len(bronze) == len(rows) - LOST
    gaps = read_only_sql(
        config, 'SELECT topic, "partition", from_offset, to_offset, missing FROM data_loss'
    )
    assert gaps.rows == [(topic, 0, read[0], cut - 1, LOST)]
    survivors = [row for i, row in enumerate(rows) if i not in lost]
    kept = write_readings_file(tmp_path / "kept.csv", survivors)
    oracle = compute_answers(kept, config.semantics)
    assert_gold_equals_oracle(config, oracle)

    # A later run finds nothing new lost: the gap is recorded once.
    run_once(spark, record, ["bronze"], echo=quiet)
    assert len(read_only_sql(config, "SELECT * FROM data_loss").rows) == 1
