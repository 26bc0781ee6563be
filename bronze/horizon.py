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

The horizon is the earliest, over the partitions not read to their end, of the produce
time (Kafka's record timestamp) of the last message read from each, or ALL when every
partition is read to its end. It assumes that produce time does not fall along a
partition (one producer, or producers whose clocks agree within the lateness), as
Kafka's timestamps do for one producer: then no message still unread was produced
before it. The broker is asked only where each partition's log ends (one request on
a consumer kept open; fetching the first unread message of each partition, a tighter
bound by one message, took 0.3 s a batch: a quarter of bronze's time).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping

from meterlake.core.config import KafkaConf

log = logging.getLogger(__name__)

# Released: every message. The largest instant a Delta timestamp holds (9999-12-31).
ALL = 253_402_300_799_999_999
CONNECT_TIMEOUT_MS = 5_000  # a broker that does not answer by then is away

Partition = tuple[str, int]


def release_horizon(
    read_to: Mapping[Partition, int],
    log_end: Mapping[Partition, int],
    last_read: Mapping[Partition, int],
    before: int,
) -> int:
    """The horizon (µs) once partitions are read to `read_to` (offsets, exclusive),
    with `log_end` the end of each partition's log now, `last_read` the produce time of
    the last message read of each partition (a lower bound on its next one's, produce
    time not falling along a partition) and `before` the previous batch's horizon
    (still true, and a lower bound where nothing else is known)."""
    horizon = ALL
    for partition, end in log_end.items():
        if end <= read_to.get(partition, 0):
            continue  # read to its end
        horizon = min(horizon, last_read.get(partition, before))
    return max(horizon, before)


class Horizons:
    """The release horizon of each bronze batch of one query, with the end of each
    partition's log asked of the broker by a kafka-python consumer (no group, nothing
    committed), kept open from batch to batch until the horizon is ALL (which it stays:
    a horizon never goes back)."""

    def __init__(self, kafka: KafkaConf) -> None:
        self.kafka = kafka
        self.before = 0  # the last batch's horizon
        self.read: dict[Partition, int] = {}  # produce time of the last message read
        self._consumer = None

    def next(self, read_to: Mapping[Partition, int], last_read: Mapping[Partition, int]) -> int:
        """The horizon after a batch that read the topic's partitions to `read_to`;
        `last_read`: the produce time (µs) of the last message it read of each. When
        the broker does not answer (it may be restarting), every partition counts as
        having more to read: messages beyond what is known wait for a later batch."""
        if self.before == ALL:
            return ALL  # a horizon never goes back: nothing left to ask
        self.read.update(last_read)
        try:
            ends = self._log_ends(read_to)
        except Exception as exc:  # a lookup never fails the batch: its answer is a bound
            log.warning("bronze horizon: the broker did not answer (%s); messages produced "
                        "after the last read ones wait for a later batch", type(exc).__name__)
            self.close()
            ends = {p: end + 1 for p, end in read_to.items()}
        self.before = release_horizon(read_to, ends, self.read, self.before)
        if self.before == ALL:
            self.close()
        return self.before

    def _log_ends(self, read_to: Mapping[Partition, int]) -> dict[Partition, int]:
        from kafka import KafkaConsumer, TopicPartition

        from meterlake.core.kafkaclient import client_settings

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap.split(","),
                client_id="meterlake-bronze-horizon",
                group_id=None,
                enable_auto_commit=False,
                bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
                request_timeout_ms=15_000,  # kafka-python: above its session timeout (10 s)
                **client_settings(self.kafka.client, KafkaConsumer.DEFAULT_CONFIG),
            )
            weakref.finalize(self, self._consumer.close)
        partitions = [TopicPartition(topic, p) for topic, p in read_to]
        return {(tp.topic, tp.partition): end
                for tp, end in self._consumer.end_offsets(partitions).items()}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
