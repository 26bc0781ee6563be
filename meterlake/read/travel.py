"""Time travel over the Delta tables: a table's commits, the version to read for
`--version` / `--as-of`, and the table opened at that version (delta-rs).

A version outside the log or an instant before the first commit is an error, never
silently the nearest version. The version whose answers stood at an event time
(`--at`) is the answers' own question: `meterlake.read.answers.version_at_event_time`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError, one_line
from meterlake.read.clock import wall_clock, zone_of


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: datetime  # UTC
    operation: str
    metrics: dict[str, Any]


def commits_of(table: DeltaTable, limit: int | None = None) -> list[Commit]:
    """The table's commits still in its log (the latest `limit` of them), oldest first."""
    commits = [
        Commit(
            version=int(info["version"]),
            timestamp=datetime.fromtimestamp(int(info.get("timestamp", 0)) / 1000, tz=UTC),
            operation=str(info.get("operation", "")),
            metrics=dict(info.get("operationMetrics") or {}),
        )
        for info in table.history(limit)
    ]
    return sorted(commits, key=lambda c: c.version)


def _missing_table_message(config: Config, name: str) -> str:
    path = config.table_path(name)
    return f"table {name} not found at {path}: run `meterlake run --once` first"


def choose_version(
    name: str,
    commits: Sequence[Commit],
    version: int | None,
    as_of: datetime | None,
    zone: tzinfo,
) -> int:
    """The version of table `name` (its `commits`, oldest first) to read: `version`, or
    the latest commit made at or before the instant `as_of` (Delta's timestamp-as-of),
    or the latest one. A version outside the log or an instant before the first
    commit is an error, never silently the nearest version."""
    if version is not None and as_of is not None:
        raise MeterlakeError("give a version or a time to travel to, not both")
    first, last = commits[0].version, commits[-1].version
    if as_of is not None:
        earlier = [c.version for c in commits if c.timestamp <= as_of]
        if not earlier:
            raise MeterlakeError(
                f"{name} did not exist at {wall_clock(as_of, zone)}: its first version "
                f"({first}) was written at {wall_clock(commits[0].timestamp, zone)}"
            )
        return earlier[-1]
    if version is None:
        return last
    if not first <= version <= last:
        raise MeterlakeError(f"{name} has versions {first}..{last}; there is no version {version}")
    return version


def open_table(
    config: Config, name: str, version: int | None = None, as_of: datetime | None = None
) -> DeltaTable:
    """The Delta table `name`, at `version`, or as it was at the instant `as_of`
    (see `choose_version`)."""
    if version is not None and as_of is not None:
        raise MeterlakeError("give a version or a time to travel to, not both")
    path = config.table_path(name)
    if not DeltaTable.is_deltatable(str(path)):
        raise MeterlakeError(_missing_table_message(config, name))
    try:
        table = DeltaTable(str(path))
        if version is None and as_of is None:
            return table
        chosen = choose_version(name, commits_of(table), version, as_of, zone_of(config))
        table.load_as_version(chosen)
        return table
    except DeltaError as exc:
        raise MeterlakeError(f"cannot read {name} at {path}: {one_line(exc)}") from None
