"""The release horizon of a bronze batch (bronze.horizon): by hand, then asked of the
real broker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bronze.horizon import ALL, Horizons, release_horizon
from meterlake.core.net import free_port
from meterlake.tools.publish import ensure_topic

A, B, C = ("t", 0), ("t", 1), ("t", 2)


def test_every_partition_read_to_its_end_releases_all() -> None:
    assert release_horizon({A: 5, B: 7}, {A: 5, B: 7}, {A: 10, B: 20}, 3) == ALL
    assert release_horizon({}, {}, {}, 0) == ALL  # an empty topic


def test_the_earliest_last_read_message_of_a_partition_with_more_is_the_horizon() -> None:
    # A and C have unread messages, their last read ones produced at 30 and 20; B is
    # read to its end.
    assert release_horizon({A: 5, B: 7, C: 1}, {A: 9, B: 7, C: 4},
                           {A: 30, B: 99, C: 20}, 0) == 20


def test_a_partition_never_read_stands_in_with_the_previous_horizon() -> None:
    # C not read yet, and not at its end: the previous horizon is all that is known
    assert release_horizon({A: 5, C: 0}, {A: 9, C: 3}, {A: 40}, 12) == 12
    # a horizon never goes back: the previous one still holds
    assert release_horizon({A: 5}, {A: 9}, {A: 8}, 12) == 12


def test_the_broker_tells_which_partitions_are_read_to_their_end(kafka, config, caplog) -> None:
    """Where the logs end is asked of the real broker; what was read is remembered from
    batch to batch, where a batch read nothing of a partition."""
    from kafka import KafkaProducer

    ensure_topic(config.kafka)
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all")
    topic = config.kafka.topic
    produced = {0: [1_000, 2_000, 3_000], 1: [1_500, 2_500], 2: [500]}  # ms, per partition
    for partition, times in produced.items():
        for ms in times:
            producer.send(topic, b"{}", partition=partition, timestamp_ms=ms)
    producer.flush()
    producer.close()
    p0, p1, p2 = ((topic, p) for p in range(3))
    horizons = Horizons(config.kafka)
    # 0 read to offset 1 (its last read produced at 1,000 ms), 1 to its end, 2 not yet
    assert horizons.next({p0: 1, p1: 2, p2: 0}, {p0: 1_000_000, p1: 2_500_000}) == 0
    # 2 read to its end; 0 not read by this batch: its last read message stands
    assert horizons.next({p0: 1, p1: 2, p2: 1}, {p2: 500_000}) == 1_000_000
    assert horizons.next({p0: 3, p1: 2, p2: 1}, {p0: 3_000_000}) == ALL
    # ALL it stays (a horizon never goes back), and no broker is asked again: one
    # that is away would be said in a warning
    horizons.kafka = replace(config.kafka, bootstrap=f"127.0.0.1:{free_port()}")
    with caplog.at_level("WARNING", "bronze.horizon"):
        assert horizons.next({p0: 3, p1: 2, p2: 1}, {}) == ALL
    assert "did not answer" not in caplog.text


@pytest.mark.kafka  # a Kafka client (and no broker)
def test_a_broker_that_does_not_answer_holds_back_what_is_not_known(base_config) -> None:
    """A batch while the broker restarts: no error, and nothing is released beyond the
    last message read of any partition (each may have more)."""
    away = replace(base_config.kafka, bootstrap=f"127.0.0.1:{free_port()}")
    horizons = Horizons(away)
    horizons.before = 10
    assert horizons.next({A: 5, B: 3}, {A: 40, B: 25}) == 25
    assert horizons.next({A: 6, B: 3, C: 0}, {A: 41}) == 25  # never back, C unknown
