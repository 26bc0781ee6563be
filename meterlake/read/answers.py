"""`meterlake query q1..q4`: the sorted answer of one question, live or on an earlier
version of its gold table: `--version`, `--as-of` (the version current at an
instant) or `--at` (the version whose answers stood at an event time).

`answer` is the function behind the CLI, the page (meterlake.read.livegold) and the
report; each answer's notes name its table's version and its "now".
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import datetime, tzinfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.clock import parse_instant, wall_clock, zone_of
from meterlake.read.connection import connect_with_versions, fetch, memory_guard
from meterlake.read.halfhours import HalfHours
from meterlake.read.result import Result
from meterlake.read.travel import commits_of, open_table
from meterlake.read.views import COST_NOTE, HALF_HOUR_VIEWS, VIEW_TABLES, VIEW_TITLES


def query_view(
    config: Config,
    view: str,
    version: int | None = None,
    as_of: str | None = None,
    sensors: Sequence[str] = (),
    at: str | None = None,
) -> Result:
    """The sorted answer of one question, optionally on an earlier version of its table:
    `version`, the version current at the instant `as_of`, or the one that stood at
    event time `at` (`version_at_event_time`).

    `sensors` keeps only those sensors (rows of q1, q2, q4; columns of q3). The
    ids reach DuckDB as a bound list parameter, never as SQL text.
    """
    table = view_table(config, view)
    if at is not None:
        if version is not None or as_of is not None:
            raise MeterlakeError("give one of a version, a time or an event time, not two")
        version = version_at_event_time(config, table, parse_instant(at, zone_of(config)))
    con, versions = connect_with_versions(config, version, as_of, (table,))
    with closing(con):
        return answer(con, config, view, versions[table], sensors)


def stood_at(table: DeltaTable) -> datetime | None:
    """The event time a gold table's answers stand at, as loaded: its latest `as_of`,
    from the files' statistics (delta-rs keeps each file's maximum, to the millisecond),
    so no file is read; None while the table is empty."""
    files = pa.table(table.get_add_actions(flatten=True))
    if "max.as_of" not in files.column_names:
        return None
    return pc.max(files["max.as_of"]).as_py()


def version_standing_at(name: str, versions: Sequence[int],
                        stood: Callable[[int], datetime | None], at: datetime,
                        zone: tzinfo) -> int:
    """Of gold table `name`'s `versions` (oldest first), the last whose answers stood at
    event time `at`: whose `stood` (`stood_at`) is at or before it (`replay --step`
    leaves one per step). A table's as_of never moves back from one version to the
    next (docs/semantics.md), so the versions are searched by halves."""
    first = stood(versions[0])
    if first is not None and first > at:
        raise MeterlakeError(
            f"{name} has no answer at {wall_clock(at, zone)}: its first version stands at "
            f"{wall_clock(first, zone)}"
        )
    low, high = 0, len(versions) - 1  # versions[low] stood at or before `at`
    while low < high:
        middle = (low + high + 1) // 2
        moment = stood(versions[middle])
        if moment is None or moment <= at:
            low = middle
        else:
            high = middle - 1
    return versions[low]


def version_at_event_time(config: Config, name: str, at: datetime) -> int:
    """The version of gold table `name` whose answers stood at event time `at`
    (`version_standing_at`)."""
    path = str(config.table_path(name))
    versions = [c.version for c in commits_of(open_table(config, name))]
    return version_standing_at(
        name, versions, lambda version: stood_at(DeltaTable(path, version=version)), at,
        zone_of(config))


def view_table(config: Config, view: str) -> str:
    """The gold table a view reads; an unknown view or a missing table is an error."""
    if view not in VIEW_TABLES:
        raise MeterlakeError(f"unknown view {view!r}; known: {', '.join(VIEW_TABLES)}")
    table = VIEW_TABLES[view]
    if not DeltaTable.is_deltatable(str(config.table_path(table))):
        raise MeterlakeError(
            f"gold table {table} not found under {config.lake}: run `meterlake run --once` first"
        )
    return table


def answer(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    view: str,
    version: int,
    sensors: Sequence[str] = (),
) -> Result:
    """`view` on a connection where its table (at `version`) and the views are registered.

    q3 and q3_long are laid out from one `HalfHours` (a matrix, rows made on demand);
    the others are their SQL view's rows."""
    table = VIEW_TABLES[view]
    zone = zone_of(config)
    views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    if ("q3_long" if view in HALF_HOUR_VIEWS else view) not in views:
        raise MeterlakeError(f"{table} does not have the columns {view} needs")
    cells = None
    with memory_guard(config, view):
        if view in HALF_HOUR_VIEWS:
            cells = HalfHours.read(con, config.semantics.zone, zone)
            if sensors:
                cells = cells.only(sensors)
            if view == "q3":
                columns, rows = ["period_start", *cells.sensors], cells.wide_rows()
            else:
                columns, rows = ["period_start", "sensor_id", "energy_kwh"], cells.long_rows()
        else:
            if sensors:
                chosen = "SELECT unnest(CAST($sensors AS VARCHAR[]))"
                result = fetch(con, f"SELECT * FROM {view} WHERE sensor_id IN ({chosen})",
                               zone, {"sensors": list(sensors)})
            else:
                result = fetch(con, f"SELECT * FROM {view}", zone)
            columns, rows = result.columns, result.rows
        now = con.execute(f"SELECT max(as_of) FROM {table}").fetchone()[0]
    notes = [_view_note(view, table, version, now, zone)]
    if view == "q4":
        notes.append(COST_NOTE)
    return Result(
        columns=columns,
        rows=rows,
        decimals=4 if view == "q4" else 3,
        notes=tuple(notes),
        version=version,
        as_of=None if now is None else now.astimezone(zone),
        cells=cells,
    )


def _view_note(view: str, table: str, version: int, now: datetime | None, zone: tzinfo) -> str:
    if now is None:
        return f"{view}: {table} version {version} is empty"
    local = now.astimezone(zone)
    period = local.strftime("%Y-%m") if view == "q1" else local.date().isoformat()
    return (
        f"{view}: {VIEW_TITLES[view]} ({period}), as of {wall_clock(local, zone)} "
        f"({table} version {version})"
    )
