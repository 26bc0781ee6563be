"""Running the layers: catch-up (`run --once`) and live streams."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bronze.job import start_bronze
from gold.job import start_gold
from meterlake.core.catalog import LAYERS, QUERY_TABLES
from meterlake.core.checkpoints import CheckpointLock, damaged_message, guard
from meterlake.core.compaction import Compactor, compact_due
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import on_object_store
from meterlake.core.sparkinternals import (
    cause_in_batch,
    first_line,
    is_damaged_log,
    lost_offsets,
    raised_inside,
)
from meterlake.core.storage import unreachable
from meterlake.core.streams import Run
from meterlake.read import validation
from silver.job import start_silver

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

REPORT_EVERY_S = 60  # live mode: a line on what silver accepted and quarantined
STOPPING = "stopping after the running micro-batches (Ctrl-C again: at once) ..."
# Each layer's streaming query (named like its checkpoint; the tables it writes:
# meterlake.core.catalog.QUERY_TABLES).
LAYER_QUERIES = {layer: (layer,) for layer in LAYERS}
STARTS = {"bronze": start_bronze, "silver": start_silver, "gold": start_gold}


def guard_layer(config: Config, layer: str) -> list[CheckpointLock]:
    """Lock and check the checkpoints of a layer's queries (see meterlake.core.checkpoints);
    all or none: on a failure the locks already taken are released."""
    held: list[CheckpointLock] = []
    try:
        for query in LAYER_QUERIES[layer]:
            taken = guard(config, query, QUERY_TABLES[query])
            if taken:
                held.append(taken)
    except BaseException:
        release(held)
        raise
    return held


def release(locks: list[CheckpointLock]) -> None:
    for held in locks:
        held.release()


@contextmanager
def _pool(spark: SparkSession, name: str) -> Iterator[None]:
    """Queries started inside run in FAIR scheduler pool `name`: a query's thread
    (and its foreachBatch jobs) keeps the pool of the thread that started it."""
    context, key = spark.sparkContext, "spark.scheduler.pool"
    previous = context.getLocalProperty(key)
    context.setLocalProperty(key, name)
    try:
        yield
    finally:
        context.setLocalProperty(key, previous)  # type: ignore[arg-type]


def start_layer(
    spark: SparkSession, config: Config, layer: str, run: Run
) -> list[StreamingQuery]:
    """Start a layer's query, in its own scheduler pool (named like the layer)."""
    with _pool(spark, layer):
        return [STARTS[layer](spark, config, run)]


def _rows_read(query: StreamingQuery) -> int:
    return sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)


def explain_failure(query: str, error: str, config: Config | None = None) -> str:
    """Spark's error text for a failed query -> one line that says what to do."""
    text = error.strip()
    checkpoint = config.checkpoint(query) if config else f"the {query} checkpoint"
    raised = raised_inside(text)
    if raised is not None:
        return raised
    if config and on_object_store(config.lake) and (gone := unreachable(config.storage, text)):
        return f"{query} failed: {gone}: each query resumes from its checkpoint"
    where = lost_offsets(text)
    if where is not None:
        return (
            f"{query} stopped, data loss: Kafka no longer has messages it had not read "
            f"yet{where}; retention ran or records were deleted. Nothing after them was "
            "written. To go on from the oldest offset Kafka has and record the gap in the "
            'data_loss table, set [streams] on_data_loss = "record"'
        )
    if is_damaged_log(text):
        detail = f"Spark cannot read it ({first_line(text)[:300]})"
        return damaged_message(query, checkpoint, detail)
    cause = cause_in_batch(text)
    if cause:  # the error inside foreachBatch
        return f"{query} failed: {cause[:500]}"
    return f"{query} failed: {first_line(text)[:500] or 'unknown error'}"


def _await(queries: list[StreamingQuery], config: Config | None = None) -> None:
    """Wait for every query; the first failure stops the others and becomes one line."""
    from pyspark.errors import StreamingQueryException

    for query in queries:
        try:
            query.awaitTermination()
        except StreamingQueryException as exc:
            for other in queries:
                other.stop()
            raise failure(query.name, exc, config) from None


def failure(query: str | None, exc: BaseException, config: Config | None) -> MeterlakeError:
    """A failed query's exception (and its JVM stack trace) as one line."""
    text = f"{exc}\n{getattr(exc, '_stackTrace', '') or ''}"
    return MeterlakeError(explain_failure(query or "query", text, config))


def check_layers(layers: list[str]) -> list[str]:
    unknown = [x for x in layers if x not in LAYERS]
    if unknown or not layers:
        raise MeterlakeError(
            f"unknown layer(s) {', '.join(unknown) or '(none)'}; use {','.join(LAYERS)}"
        )
    return [x for x in LAYERS if x in layers]


def stages(layers: list[str]) -> list[list[str]]:
    """A catch-up's layers in steps, one after another; the layers of a step run side
    by side. Gold catches up alone, last: its batch costs about a second whatever its
    size (it rewrites the partitions it touches in four tables), so following silver
    batch by batch would cost more than it saves (the month: 5 batches, 5.3-6.6 s of
    gold's addBatch against 0.7-1.0 s in one)."""
    steps = [[x for x in layers if x != "gold"], [x for x in layers if x == "gold"]]
    return [step for step in steps if step]


def followed(config: Config, layers: list[str]) -> dict[str, str]:
    """The layers of a step that read another layer of it: layer -> the layer it reads
    (silver -> bronze unless silver reads the topic; gold -> silver)."""
    from meterlake.app.catchup import source_of

    return {layer: source for layer in layers if (source := source_of(config, layer)) in layers}


class Drain:
    """`query.processAllAvailable()` in a thread of its own: the query reads everything
    its source has, while the caller goes on (showing progress, watching the others)."""

    def __init__(self, query: StreamingQuery) -> None:
        self.query = query
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"drain-{query.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.query.processAllAvailable()
        except BaseException as exc:  # the query failed: the caller says so
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


def _until_all_ended(
    queries: dict[str, StreamingQuery], config: Config, follows: dict[str, str], tick=None
) -> dict[str, float]:
    """Wait for a catch-up's queries; when each ended (monotonic seconds). A follower
    (`follows`: layer -> the layer it reads) is drained once the layer it reads ended,
    then stopped. The first failure stops the others and becomes one line (see _await).
    `tick()`, if given, is called while waiting (the progress; it decides itself how
    often to look)."""
    ended: dict[str, float] = {}
    drains: dict[str, Drain] = {}
    while len(ended) < len(queries):
        if tick is not None:
            tick()
        for layer, query in queries.items():
            if layer in ended:
                continue
            drain = drains.get(layer)
            if drain is not None and drain.done:
                query.stop()  # idle: it read everything its ended source wrote (or failed)
                if drain.error is not None and query.exception() is None:
                    raise failure(layer, drain.error, config)
            elif drain is None and follows.get(layer) in ended:
                drains[layer] = Drain(query)
            if not query.isActive:
                ended[layer] = time.monotonic()
                if query.exception() is not None:
                    _await([query, *queries.values()], config)
        time.sleep(0.05)
    _await(list(queries.values()), config)
    return ended


def run_once(
    spark: SparkSession, config: Config, layers: list[str], echo=print, progress=None,
    on_start: Callable[[StreamingQuery], None] | None = None,
) -> dict[str, float]:
    """Each layer catches up on everything available, in `stages`: bronze and silver
    side by side, silver following bronze (`Run.FOLLOW`: micro-batches of whatever
    bronze committed so far; it ends once bronze ended and it read the rest), then
    gold; returns the seconds from the start until each layer ended. When silver ran,
    ends with what it accepted and quarantined (meterlake.read.validation). `progress`
    (e.g. meterlake.core.progress.Progress) shows each layer's rows read of its total
    while it runs (meterlake.app.catchup); `on_start` is called with each query once it
    started (the bench keeps them for their progress).

    How bronze's batches are cut leaves silver's answers as they are (the release
    horizon, bronze.horizon), so the answers are those of the layers one after another,
    in less time: silver judges bronze's first batch while bronze reads the next."""
    from meterlake.app.catchup import layer_waiting, watched

    layers = check_layers(layers)
    before = validation.versions(config) if "silver" in layers else None
    began = time.monotonic()
    timings: dict[str, float] = {}
    for step in stages(layers):
        echo(f"{' and '.join(step)}: catching up ...")
        follows = followed(config, step)
        started = time.monotonic()
        locks: list[CheckpointLock] = []
        queries: dict[str, StreamingQuery] = {}
        try:
            for layer in step:
                locks += guard_layer(config, layer)
            totals = {layer: None if layer in follows or progress is None
                      else layer_waiting(config, layer) for layer in step}
            for layer in step:
                run = Run.FOLLOW if layer in follows else Run.ONCE
                queries[layer] = start_layer(spark, config, layer, run)[0]
                if on_start is not None:
                    on_start(queries[layer])
            if progress is None:
                ended = _until_all_ended(queries, config, follows)
            else:
                with watched(spark, config, queries, progress, totals, started,
                             follows) as tick:
                    ended = _until_all_ended(queries, config, follows, tick)
        except BaseException:
            for query in queries.values():
                query.stop()
            raise
        finally:
            release(locks)
        for layer, query in queries.items():
            timings[layer] = ended[layer] - began
            echo(f"{layer:>6}: read {_rows_read(query):,} rows in {ended[layer] - started:.1f} s")
    compacted = compact_due(config, layers)
    if compacted:
        echo(f"compacted the small files of {', '.join(compacted)}")
    if before is not None:
        validation.report(config, before, echo)
    return timings


def run_live(spark: SparkSession, config: Config, layers: list[str], echo=print) -> None:
    """All layers' streams on their configured triggers, until interrupted: Ctrl-C stops
    each query between two of its micro-batches, a second Ctrl-C at once
    (meterlake.app.stopping). Their tables' small files are compacted on a schedule beside
    them (meterlake.core.compaction)."""
    from pyspark.errors import StreamingQueryException

    from meterlake.app.stopping import Interrupts, stop_between_triggers

    locks: list[CheckpointLock] = []
    queries: list[StreamingQuery] = []
    try:
        layers = check_layers(layers)
        for layer in layers:
            locks += guard_layer(config, layer)
        with Interrupts(lambda: echo(STOPPING)) as ctrl_c, Compactor(config, layers):
            try:
                for layer in layers:
                    if not ctrl_c.count:
                        queries += start_layer(spark, config, layer, Run.LIVE)
                if not ctrl_c.count:
                    echo(f"running {', '.join(q.name for q in queries)}; Ctrl-C stops")
                before = validation.versions(config)
                report_at = time.monotonic() + REPORT_EVERY_S
                # Until a query ends or Ctrl-C: every report interval, what silver judged.
                while not ctrl_c.count and not spark.streams.awaitAnyTermination(1):
                    if "silver" in layers and time.monotonic() >= report_at:
                        before = validation.report(config, before, echo)
                        report_at = time.monotonic() + REPORT_EVERY_S
            except KeyboardInterrupt:  # not in the main thread: no Interrupts there
                echo(STOPPING)
            except StreamingQueryException as exc:  # a query failed: one line
                stop_between_triggers(queries, now=lambda: True)
                failed = next((q.name for q in queries if q.exception()), None)
                raise failure(failed, exc, config) from None
            except BaseException:
                stop_between_triggers(queries, now=lambda: True)
                raise
            ctrl_c.announce()
            stop_between_triggers(queries, now=lambda: ctrl_c.count > 1)
        _await(queries, config)
    finally:
        release(locks)


def run(config: Config, layers: list[str], once: bool) -> None:
    from meterlake.core.session import build_session
    from meterlake.core.tariff import load_tariff

    load_tariff(config.semantics.tariff, config.semantics.zone)  # bad plans: nothing starts
    if "bronze" in layers or ("silver" in layers and config.streams.silver_source == "kafka"):
        from meterlake.tools.publish import ensure_broker_reachable, ensure_topic

        ensure_broker_reachable(config)
        # Bronze subscribed to a topic a publisher creates later fails with
        # UnknownTopicOrPartition: create it first, as the publisher would.
        ensure_topic(config.kafka)
    # Checkpoint misuse fails here, in a second, before the JVM starts.
    locks: list[CheckpointLock] = []
    try:
        for layer in check_layers(layers):
            locks += guard_layer(config, layer)
        spark = build_session(config)
        if once:
            from meterlake.core.progress import Progress

            run_once(spark, config, layers, progress=Progress)
        else:
            run_live(spark, config, layers)
    finally:
        release(locks)
