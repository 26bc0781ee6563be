"""How far a catch-up (`run --once`) has to go: each layer's rows waiting and rows read.

Waiting, read just before the layer's query starts:

- a query reading the topic (bronze; silver too with `[streams] silver_source =
  "kafka"`): Kafka's end offsets minus where the checkpoint's last finished
  micro-batch ended (the oldest offsets Kafka has, for a new checkpoint);
- a query reading a Delta table (gold reads silver; silver reads bronze, the
  default `[streams] silver_source = "bronze"`): the rows the source's commits added
  from the version the checkpoint reached on (the whole table, for a new
  checkpoint). Commits that change no data (OPTIMIZE) add nothing.

Read so far: the input rows of the query's finished micro-batches
(`StreamingQuery.recentProgress`), plus for a micro-batch still running the
most records one running Spark stage of the layer's scheduler pool (named like
the layer, meterlake.app.pipeline) has read: task metrics in Spark's status store,
which grow as tasks end. A micro-batch is large (up to `[streams]
max_offsets_per_trigger` Kafka messages, 100,000 by default, or
`bronze_bytes_per_trigger` of bronze's files: the month is five of them), so
without the second part the count would move only when a whole batch ends.

Checkpoints are read where they are: on local disk, or on the object store of the
lake (`LakeFiles`, with the `[storage]` settings); their format, the source offsets
in them and the running stages are Spark's internals (meterlake.core.sparkinternals);
Delta tables are read with delta-rs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from meterlake.core.config import Config, StorageConf
from meterlake.core.location import Location, ObjectPath
from meterlake.core.sparkinternals import (
    batch_source_offset,
    delta_first_unread,
    parse_kafka_offsets,
    running_stage_records,
)
from meterlake.core.storage import filesystem, names_in

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from meterlake.core.progress import Progress

log = logging.getLogger(__name__)

KAFKA = "kafka"  # a layer's source: the topic, or a table's name
TICK_S = 0.5  # how often a catch-up's progress is read while waiting
RUNNING_FLOOR = 0.01  # a running stage counts once it has read this share of the total


# --------------------------------------------------------------------------- checkpoints


class LakeFiles:
    """The few files progress reads (a checkpoint's offsets and commits), on local disk
    or, with `storage`'s settings, on the lake's object store."""

    def __init__(self, storage: StorageConf | None = None) -> None:
        self.storage = storage
        self._store = None

    def _on_store(self):
        if self._store is None:
            if self.storage is None:
                raise ValueError("a lake on an object store needs its [storage] settings")
            self._store = filesystem(self.storage)
        return self._store

    def numbers(self, folder: Location) -> list[int]:
        """The numbered files in a folder, in order."""
        if isinstance(folder, ObjectPath):
            names = names_in(self.storage, folder) if self.storage else []
        else:
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return sorted(int(name) for name in names if name.isdigit())

    def text(self, path: Location) -> str | None:
        """A file's text; None when there is none."""
        if isinstance(path, ObjectPath):
            try:
                with self._on_store().open_input_stream(f"{path.bucket}/{path.key}") as f:
                    return bytes(f.read()).decode("utf-8")
            except FileNotFoundError:
                return None
        return path.read_text(encoding="utf-8") if path.exists() else None


LOCAL = LakeFiles()


def source_offset(checkpoint: Location, files: LakeFiles = LOCAL) -> str | None:
    """The source offset (JSON text) where the checkpoint's last finished micro-batch
    ended; None for a new checkpoint."""
    committed = files.numbers(checkpoint / "commits")
    if not committed:
        return None
    return batch_source_offset(files.text(checkpoint / "offsets" / str(committed[-1])) or "")


def kafka_waiting(
    reached: dict[int, int], oldest: dict[int, int], end: dict[int, int]
) -> int:
    """Messages between where bronze got to per partition (`reached`; a partition it never
    read starts at the `oldest` offset Kafka has) and Kafka's `end` offsets."""
    return sum(
        max(last - max(reached.get(p, oldest.get(p, 0)), oldest.get(p, 0)), 0)
        for p, last in end.items()
    )


def delta_table_rows(table: Location, version: int | None = None) -> int:
    """The rows of a Delta table (as of `version`), from its files' statistics."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(table)):
        return 0
    actions = DeltaTable(str(table), version=version).get_add_actions(flatten=True)
    return int(sum(n or 0 for n in actions.column("num_records").to_pylist()))


def delta_rows_from(table: Location, version: int) -> int:
    """Rows the commits of an append-only Delta table added from `version` on: its rows
    now less its rows before (OPTIMIZE's commits change neither)."""
    before = delta_table_rows(table, version - 1) if version > 0 else 0
    return delta_table_rows(table) - before


# --------------------------------------------------------------------------- totals


def source_of(config: Config, layer: str) -> str:
    """What a layer's query reads: KAFKA or a Delta table's name."""
    if layer == "bronze" or (layer == "silver" and config.streams.silver_source == KAFKA):
        return KAFKA
    return "bronze" if layer == "silver" else "silver"


def query_waiting(config: Config, layer: str, query: str) -> int | None:
    """Rows `query` of `layer` has yet to read; None when it cannot be told."""
    checkpoint = config.checkpoint(query)
    files = LakeFiles(config.storage)
    offset = source_offset(checkpoint, files)
    source = source_of(config, layer)
    if source == KAFKA:
        from meterlake.tools.publish import topic_offsets

        oldest, end = topic_offsets(config.kafka)
        topic = config.kafka.topic
        reached = {p: o for (t, p), o in parse_kafka_offsets(offset or "{}").items() if t == topic}
        return kafka_waiting(reached, oldest, end)
    table = config.table_path(source)
    if offset is None:
        return delta_table_rows(table)
    return delta_rows_from(table, delta_first_unread(offset))


def layer_waiting(config: Config, layer: str) -> int | None:
    """Rows the layer's query (named like the layer) has yet to read; None when it
    cannot be told."""
    try:
        return query_waiting(config, layer, layer)
    except Exception as exc:  # progress is a nicety: never fail the catch-up for it
        log.info("cannot tell how many rows %s has to read: %s", layer, exc)
        return None


# --------------------------------------------------------------------------- read so far


def finished_rows(query: StreamingQuery) -> int:
    return sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)


class LayerCount:
    """Rows a layer's running catch-up has read: finished micro-batches, plus the running
    one as far as its stages tell (the most seen since the last batch finished). Stages
    that read less than RUNNING_FLOOR of the `total` are left out: they read a Delta
    log's few actions, not rows of the source."""

    def __init__(self, query: StreamingQuery, total: int | None = None) -> None:
        self.query = query
        self.floor = (total or 0) * RUNNING_FLOOR
        self._finished = 0
        self._running = 0

    def __call__(self, running: int) -> int:
        """The count, given the most records a running stage of the layer has read."""
        finished = finished_rows(self.query)
        if finished != self._finished:
            self._finished, self._running = finished, 0
        if running >= self.floor:
            self._running = max(self._running, running)
        return self._finished + self._running


@contextmanager
def watched(
    spark: SparkSession,
    config: Config,
    queries: dict[str, StreamingQuery],
    progress: Callable[..., Progress],
    totals: dict[str, int | None],
    started: float | None = None,
    follows: Mapping[str, str] | None = None,
    every_s: float = TICK_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[[], None]]:
    """A `tick()` that shows, on a new `progress`, each layer's rows read of its total
    (rates from `started`, a `clock()` time; a plain line every `[progress] every_s` when
    not on a terminal); it looks at most every `every_s` seconds. `queries`: layer -> its
    running query; `totals`: layer -> its rows waiting when it started (`layer_waiting`,
    read before the queries start: a small catch-up may be over before the last of them
    has started), None for a follower; `follows`: a layer -> the layer of the run it
    reads, whose total is known once that layer ended (meterlake.app.pipeline.run_once).
    Leaving the `with` normally shows every layer's last figures."""
    follows = follows or {}
    totals = dict(totals)
    counts = {layer: LayerCount(q, totals[layer]) for layer, q in queries.items()}
    looked = -math.inf
    rows = {f"{layer:>6}": total for layer, total in totals.items()}
    with progress(rows, "rows", started=started, every_s=config.progress.every_s) as shown:

        def tick() -> None:
            nonlocal looked
            if clock() - looked < every_s:
                return
            looked = clock()
            running = running_stage_records(spark)
            for layer, query in queries.items():
                source = follows.get(layer)
                if totals[layer] is None and source and not queries[source].isActive:
                    waiting = layer_waiting(config, layer)
                    if waiting is not None:
                        totals[layer] = finished_rows(query) + waiting
                        counts[layer].floor = totals[layer] * RUNNING_FLOOR
                        shown.set_total(f"{layer:>6}", totals[layer])
                total, ended = totals[layer], not query.isActive
                done = counts[layer](0 if ended else running.get(layer, 0))
                shown.update(f"{layer:>6}", min(done, total) if total is not None else done,
                             final=ended)

        yield tick
        looked = -math.inf  # every layer ended: their last figures
        tick()
