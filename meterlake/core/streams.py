"""Starting a layer's streaming query: the part every layer's query shares.

A query is named like its checkpoint (`<lake>/_checkpoints/<name>`), hands each
micro-batch to a foreachBatch sink (which writes it exactly once: bronze and silver
through meterlake.core.commits, gold with Delta transactions), and either catches up on
everything available and ends (`once`: Spark's availableNow trigger) or runs on its
configured trigger (`[streams] <name>`). The scheduler pool a query runs in is the
caller's (meterlake.pipeline starts each layer in its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

    from meterlake.core.config import Config

# foreachBatch: (the micro-batch, its batch id) -> None
BatchSink = Callable[["DataFrame", int], None]


def start_stream(
    rows: DataFrame, name: str, config: Config, sink: BatchSink, once: bool
) -> StreamingQuery:
    """Start streaming `rows` into `sink` as query `name`, checkpointed in
    config.checkpoint(name): until caught up when `once`, else on the trigger of
    `[streams] <name>`."""
    writer = (
        rows.writeStream.queryName(name)
        .option("checkpointLocation", str(config.checkpoint(name)))
        .foreachBatch(sink)
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=config.streams.trigger(name))
    return writer.start()
