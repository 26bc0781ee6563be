"""The release horizon of a bronze batch: the produce time before which every message
of the topic is in bronze (this batch or an earlier one).

Spark's Kafka source cuts a bounded catch-up by offsets, in proportion to each
partition's lag, not by time: a partition with little to read reaches days further
into the producer's history than one with much. A meter whose readings are on every
partition (a producer without a key) would then have its later readings judged
before its earlier ones, and these `too_late`. Silver judges only the messages
produced before the horizon and holds the others in its state until a later batch
moves the horizon past them (silver.bucket), so that the answers of a catch-up do
not depend on where the bounds cut it (docs/semantics.md, "Order and lateness").

The horizon is the earliest produce time (Kafka's record timestamp) among the first
messages not yet read of each partition, or ALL when every partition is read to its
end. It assumes that produce time does not fall along a partition (one producer, or
producers whose clocks agree within the lateness), as Kafka's timestamps do for one
producer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from meterlake.core.config import KafkaConf

log = logging.getLogger(__name__)

# Released: every message. The largest instant a Delta timestamp holds (9999-12-31).
ALL = 253_402_300_799_999_999
FETCH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_MS = 5_000  # a broker that does not answer by then is away

Partition = tuple[str, int]


def release_horizon(
    read_to: Mapping[Partition, int],
    log_end: Mapping[Partition, int],
    next_produced: Mapping[Partition, int],
    last_read: Mapping[Partition, int],
    before: int,
) -> int:
    """The horizon (µs) once partitions are read to `read_to` (offsets, exclusive),
    with `log_end` the end of each partition's log now, `next_produced` the produce
    time of the first unread message of those partitions for which it was fetched,
    `last_read` that of the last message read of each (a lower bound where the fetch
    failed, produce time not falling along a partition) and `before` the previous
    batch's horizon (still true, and a lower bound where nothing else is known)."""
    horizon = ALL
    for partition, end in log_end.items():
        if end <= read_to.get(partition, 0):
            continue  # read to its end
        known = next_produced.get(partition, last_read.get(partition, before))
        horizon = min(horizon, known)
    return max(horizon, before)


class Horizons:
    """The release horizon of each bronze batch of one query, asked of the broker by a
    kafka-python consumer (no group, nothing committed)."""

    def __init__(self, kafka: KafkaConf) -> None:
        self.kafka = kafka
        self.before = 0  # the last batch's horizon

    def next(self, read_to: Mapping[Partition, int], last_read: Mapping[Partition, int]) -> int:
        """The horizon after a batch that read the topic's partitions to `read_to`;
        `last_read`: the produce time (µs) of the last message it read of each. When
        the broker does not answer (it may be restarting), every partition counts as
        having more to read: messages beyond what is known wait for a later batch."""
        try:
            ends, produced = self._ask(read_to)
        except Exception as exc:  # a lookup never fails the batch: its answer is a bound
            log.warning("bronze horizon: the broker did not answer (%s); messages produced "
                        "after the last read ones wait for a later batch", type(exc).__name__)
            ends, produced = {p: end + 1 for p, end in read_to.items()}, {}
        self.before = release_horizon(read_to, ends, produced, last_read, self.before)
        return self.before

    def _ask(self, read_to: Mapping[Partition, int]) -> tuple[dict[Partition, int],
                                                             dict[Partition, int]]:
        """The end of each partition's log, and the produce time of the first unread
        message of those read short of it."""
        from kafka import KafkaConsumer, TopicPartition

        from meterlake.core.kafkaclient import client_settings

        consumer = KafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap.split(","),
            client_id="meterlake-bronze-horizon",
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
            request_timeout_ms=15_000,  # kafka-python: above its session timeout (10 s)
            **client_settings(self.kafka.client, KafkaConsumer.DEFAULT_CONFIG),
        )
        try:
            partitions = [TopicPartition(topic, p) for topic, p in read_to]
            ends = {(tp.topic, tp.partition): end
                    for tp, end in consumer.end_offsets(partitions).items()}
            unread = [tp for tp in partitions
                      if ends[(tp.topic, tp.partition)] > read_to[(tp.topic, tp.partition)]]
            return ends, _first_unread(consumer, unread, read_to)
        finally:
            consumer.close()


def _first_unread(consumer, unread: list, read_to: Mapping[Partition, int]) -> dict[Partition, int]:
    """The produce time (µs) of the first message at or after `read_to` of each of the
    `unread` partitions, as far as the broker gives it within FETCH_TIMEOUT_S."""
    found: dict[Partition, int] = {}
    if not unread:
        return found
    consumer.assign(unread)
    for tp in unread:
        consumer.seek(tp, read_to[(tp.topic, tp.partition)])
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    waiting = set(unread)
    while waiting and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            if tp in waiting and records:
                found[(tp.topic, tp.partition)] = records[0].timestamp * 1000
                waiting.discard(tp)
                consumer.pause(tp)
    if waiting:
        log.warning("bronze horizon: no message fetched from %d partition(s) in %.0f s; "
                    "their last read message stands in", len(waiting), FETCH_TIMEOUT_S)
    return found
