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
    assert release_horizon({A: 5, B: 7}, {A: 5, B: 7}, {}, {A: 10, B: 20}, 3) == ALL
    assert release_horizon({}, {}, {}, {}, 0) == ALL  # an empty topic


def test_the_earliest_first_unread_message_is_the_horizon() -> None:
    # A and C have unread messages, produced at 40 and 25; B is read to its end.
    assert release_horizon({A: 5, B: 7, C: 1}, {A: 9, B: 7, C: 4}, {A: 40, C: 25},
                           {A: 30, B: 99, C: 20}, 0) == 25


def test_a_partition_not_fetched_stands_in_with_its_last_read_message_or_before() -> None:
    assert release_horizon({A: 5, B: 7}, {A: 9, B: 8}, {A: 40}, {B: 20}, 0) == 20
    # C not in the batch and not fetched: the previous horizon is all that is known
    assert release_horizon({A: 5, C: 0}, {A: 9, C: 3}, {A: 40}, {}, 12) == 12
    # a horizon never goes back: the previous one still holds
    assert release_horizon({A: 5}, {A: 9}, {A: 8}, {}, 12) == 12


def test_the_broker_gives_the_first_unread_message_of_each_partition(kafka, config) -> None:
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
    horizons = Horizons(config.kafka)
    # partition 0 read to offset 1 (next produced at 2,000 ms), 1 to 2 (its end), 2 to 0
    assert horizons.next({(topic, 0): 1, (topic, 1): 2, (topic, 2): 0}, {}) == 500_000
    assert horizons.next({(topic, 0): 1, (topic, 1): 2, (topic, 2): 1}, {}) == 2_000_000
    assert horizons.next({(topic, 0): 3, (topic, 1): 2, (topic, 2): 1}, {}) == ALL


@pytest.mark.kafka  # a Kafka client (and no broker)
def test_a_broker_that_does_not_answer_holds_back_what_is_not_known(base_config) -> None:
    """A batch while the broker restarts: no error, and nothing is released beyond the
    last message read of any partition (each may have more)."""
    away = replace(base_config.kafka, bootstrap=f"127.0.0.1:{free_port()}")
    horizons = Horizons(away)
    horizons.before = 10
    assert horizons.next({A: 5, B: 3}, {A: 40, B: 25}) == 25
    assert horizons.next({A: 6, B: 3, C: 0}, {A: 41}) == 25  # never back, B and C unknown
