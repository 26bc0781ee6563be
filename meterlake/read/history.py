"""`meterlake history`: a Delta table's commits, newest first, with the rows each
wrote, updated and deleted."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError, one_line
from meterlake.read.clock import zone_of
from meterlake.read.result import Result
from meterlake.read.travel import commits_of

HISTORY_METRICS = {
    # Spark (camelCase) and delta-rs (snake_case) names, first present wins.
    "rows_written": (
        "numTargetRowsInserted", "num_target_rows_inserted", "numOutputRows",
        "num_added_rows", "num_output_rows",
    ),
    "rows_updated": ("numTargetRowsUpdated", "num_target_rows_updated", "numUpdatedRows",
                     "num_updated_rows"),
    "rows_deleted": ("numTargetRowsDeleted", "num_target_rows_deleted", "numDeletedRows",
                     "num_deleted_rows"),
}


def _metric(metrics: dict[str, Any], names: Sequence[str]) -> int | None:
    for name in names:
        if metrics.get(name) is not None:
            try:
                return int(metrics[name])
            except (TypeError, ValueError):
                return None
    return None


def history(config: Config, table: str) -> Result:
    """The Delta history of a table, newest first; MERGE counts inserted rows as written."""
    path = config.table_path(table)  # unknown name -> MeterlakeError listing the known ones
    if not DeltaTable.is_deltatable(str(path)):
        raise MeterlakeError(
            f"table {table} has not been created yet (no Delta table at {path}): "
            "run `meterlake run --once` first"
        )
    zone = zone_of(config)
    try:
        commits = commits_of(DeltaTable(str(path)))
    except DeltaError as exc:
        raise MeterlakeError(f"cannot read the history of {table}: {one_line(exc)}") from None
    rows = [
        (
            c.version,
            c.timestamp.astimezone(zone),
            c.operation,
            *(_metric(c.metrics, names) for names in HISTORY_METRICS.values()),
        )
        for c in reversed(commits)
    ]
    return Result(
        columns=["version", "timestamp", "operation", *HISTORY_METRICS],
        rows=rows,
        notes=(f"{table}: {len(rows)} commits in {path}",),
    )
