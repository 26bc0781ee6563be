"""Starting a layer's streaming query: the part every layer's query shares.

A query is named like its checkpoint (`<lake>/_checkpoints/<name>`), hands each
micro-batch to a foreachBatch sink (which writes it exactly once: bronze and silver
through meterlake.core.commits, gold with Delta transactions), and runs one of three
ways (`Run`). The scheduler pool a query runs in is the caller's (meterlake.app.pipeline
starts each layer in its own).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

    from meterlake.core.config import Config

# foreachBatch: (the micro-batch, its batch id) -> None
BatchSink = Callable[["DataFrame", int], None]
# A follower's trigger: it looks for new commits of its source this often when idle.
FOLLOW_TRIGGER = "250 milliseconds"


class Run(Enum):
    """How a query runs."""

    ONCE = "once"  # everything available, then it ends (Spark's availableNow trigger)
    # micro-batches back to back while the layer it reads catches up beside it; the
    # caller stops it once that layer ended and it read everything (run --once)
    FOLLOW = "follow"
    LIVE = "live"  # on its configured trigger (`[streams] <name>`) until stopped


def start_stream(
    rows: DataFrame, name: str, config: Config, sink: BatchSink, run: Run
) -> StreamingQuery:
    """Start streaming `rows` into `sink` as query `name`, checkpointed in
    config.checkpoint(name), run as `run` says."""
    writer = (
        rows.writeStream.queryName(name)
        .option("checkpointLocation", str(config.checkpoint(name)))
        .foreachBatch(sink)
    )
    if run is Run.ONCE:
        writer = writer.trigger(availableNow=True)
    elif run is Run.FOLLOW:
        writer = writer.trigger(processingTime=FOLLOW_TRIGGER)
    else:
        writer = writer.trigger(processingTime=config.streams.trigger(name))
    return writer.start()
