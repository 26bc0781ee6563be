"""DuckDB over the Delta lake: the read side (views q1..q4, `sql`, `history`).

How the lake is read
--------------------
Each Delta table is opened with the `deltalake` package (delta-rs), turned into
a lazy pyarrow dataset (`DeltaTable.to_pyarrow_dataset()`) and registered in an
in-memory DuckDB connection, which scans it lazily and pushes filters and
projections down to the Parquet files. Why not DuckDB's own `delta` extension:

- time travel by version *and* by timestamp: delta-rs loads any version, and we
  pick the version for a timestamp ourselves from the commit history (the
  DuckDB extension offers versions only);
- it works offline: nothing to `INSTALL`, no extension download, no extension
  binary tied to one DuckDB release;
- the pyarrow dataset is read by Python code (delta-rs' file system), so DuckDB
  can run with `enable_external_access=false` and still scan the lake.

Tables whose protocol needs deletion vectors or column mapping cannot become a
pyarrow dataset; they are read through delta-rs' own scan and materialised in
memory instead (correct, just not lazy).

The views follow docs/semantics.md, "The clock and the views". "Now" is the
latest `as_of` of the view's own table (so a view of a time-travelled table is
self-consistent), the current day and month are its local date in the
configured zone, and timestamps come back in that zone. CSV and JSON print them
in full with their offset (ISO 8601); the human table and the notes print local
wall-clock time (`wall_clock`: `2024-02-02 00:00`), with the offset only in the
hour that October repeats. The connection's TimeZone is set to the zone, so
nothing depends on the machine's.

`sql` runs in a sandbox: one statement, which DuckDB's parser must classify as
a query (SELECT, WITH, VALUES, FROM, TABLE, PIVOT, DESCRIBE, SUMMARIZE); then
the connection runs with external access off (no files, no ATTACH, no
extensions) and its configuration locked, so a query cannot turn it back on.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, DeltaProtocolError

from meterlake.core import catalog
from meterlake.core.catalog import GOLD_TABLES
from meterlake.core.config import Config, ReadConf
from meterlake.core.errors import MeterlakeError
from meterlake.read import halfhours
from meterlake.read.halfhours import HalfHours
from meterlake.read.more_views import create_more_views
from meterlake.read.sqltext import clock_sql, sql_string

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

ALL_TABLES: tuple[str, ...] = catalog.names()
ANSWERS: tuple[str, ...] = tuple(catalog.VIEW_TABLES)  # the four answers, q1..q4
# Each view reads only its own gold table (VIEW_TABLES), so `--version` / `--as-of`
# apply to it. q3_long is q3 in long form, for scripts.
VIEW_TABLES: dict[str, str] = {**catalog.VIEW_TABLES, "q3_long": catalog.VIEW_TABLES["q3"]}
VIEW_TITLES = {
    "q1": "kWh per sensor this month",
    "q2": "kWh per sensor today",
    "q3": "kWh per sensor and half hour today",
    "q4": "cost per sensor today",
    "q3_long": "kWh per half hour and sensor today",
}
HALF_HOUR_VIEWS = ("q3", "q3_long")  # laid out from one HalfHours, not by a SQL view
COST_NOTE = "energy term only, no VAT or fixed charges"
FORMATS = ("table", "csv", "json")

# Settings applied, in this order, before a connection runs untrusted SQL. The
# Arrow datasets are registered before; DuckDB scans them without file access.
SANDBOX_SETTINGS = (
    "SET python_enable_replacements = false",  # no scanning of Python variables by name
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",  # no files, ATTACH, COPY, INSTALL/LOAD
    "SET lock_configuration = true",  # and no SET/RESET to undo the above
)


@dataclass(frozen=True)
class Result:
    """Rows of a query, ready to print or to hand to pandas.

    `decimals` and `notes` only shape the human table: `decimals` rounds every
    float (None: by column name, kWh 3, EUR 4, else 6); `notes` are footnotes.
    A view's answer also names its table's `version` and its `as_of` ("now").
    """

    columns: list[str]
    rows: Sequence[tuple]  # q3, q3_long: made on demand from a matrix (meterlake.read.halfhours)
    decimals: int | None = None
    notes: tuple[str, ...] = ()
    version: int | None = None
    as_of: datetime | None = None
    cells: HalfHours | None = None  # q3, q3_long: the matrix their rows are made from

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=self.columns)


# --------------------------------------------------------------------------- time


def zone_of(config: Config) -> ZoneInfo:
    try:
        return ZoneInfo(config.semantics.zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MeterlakeError(f"unknown time zone {config.semantics.zone!r}") from None


def parse_instant(text: str, zone: tzinfo) -> datetime:
    """'YYYY-MM-DD HH:MM:SS' is local time in `zone`; ISO 8601 with an offset is absolute.

    A local time in the repeated October hour is its first occurrence, one in
    the skipped March hour uses the offset before the switch (fold=0), as in
    docs/semantics.md.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MeterlakeError(
            f"cannot read time {text!r}: expected 'YYYY-MM-DD HH:MM:SS' (local time) "
            "or ISO 8601 with an offset, e.g. 2024-02-03T12:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _local(value: datetime, zone: tzinfo) -> datetime:
    return value.astimezone(zone)


def wall_clock(value: datetime, zone: tzinfo | None = None) -> str:
    """An instant as people read it in `zone` (default: its own): '2024-02-02 00:00',
    with ':SS' when it is not on the minute, and the offset only where that wall-clock
    time happens twice (the hour repeated when legal time ends in October). The one
    rule for times shown to people: the CLI's tables and notes, the page, the report."""
    local = value.astimezone(zone or value.tzinfo)
    text = local.strftime("%Y-%m-%d %H:%M")
    if local.second or local.microsecond:
        text += f":{local.second:02d}"
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.strftime("%z")
        text += f" {offset[:3]}:{offset[3:]}"
    return text


# --------------------------------------------------------------------------- Delta


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
        raise MeterlakeError(f"cannot read {name} at {path}: {_one_line(exc)}") from None


def arrow_source(table: DeltaTable) -> ds.Dataset | pa.Table:
    """A lazy dataset when pyarrow can read the table, else the table in memory."""
    try:
        return table.to_pyarrow_dataset()
    except DeltaProtocolError as exc:
        log.info("reading %s through delta-rs' scan: %s", table.table_uri, exc)
        data = pa.RecordBatchReader.from_stream(table.scan()).read_all()
        # The scan yields string_view columns, which DuckDB cannot filter in Arrow.
        schema = pa.schema(table.schema().to_arrow())
        return data.select(schema.names).cast(schema)


# --------------------------------------------------------------------------- views


def month_view_sql(zone: str) -> str:
    """q1: kWh per sensor for the current month."""
    return f"""
WITH clock AS ({clock_sql("month_energy", zone)})
SELECT sensor_id, energy_kwh FROM (
    SELECT m.sensor_id, m.energy_kwh
    FROM month_energy AS m, clock
    WHERE m.month = CAST(date_trunc('month', clock.today) AS DATE)
)
ORDER BY round(energy_kwh, 9) DESC, sensor_id DESC
"""


def day_view_sql(table: str, value: str, zone: str) -> str:
    """q2/q4: today's value per sensor with a row this month; 0 when nothing today."""
    return f"""
WITH clock AS ({clock_sql(table, zone)}),
month_sensors AS (
    SELECT DISTINCT t.sensor_id
    FROM {table} AS t, clock
    WHERE t.day BETWEEN CAST(date_trunc('month', clock.today) AS DATE) AND clock.today
),
this_day AS (
    SELECT t.sensor_id, t.{value} FROM {table} AS t, clock WHERE t.day = clock.today
)
SELECT sensor_id, {value} FROM (
    SELECT s.sensor_id, coalesce(d.{value}, 0.0) AS {value}
    FROM month_sensors AS s LEFT JOIN this_day AS d USING (sensor_id)
)
ORDER BY round({value}, 9) DESC, sensor_id DESC
"""


def cost_by_band_sql(zone: str) -> str:
    """Today's cost per sensor and tariff band, from the silver pieces of q4's day.

    Gold's day_cost holds one total per sensor and day; the band split is the
    sum of the current day's silver pieces (with their retractions, so a plain
    sum) per band, the current day being q4's: the local date of day_cost's
    latest as_of. Columns: sensor_id, band, price (EUR per kWh), cost_eur.
    """
    return f"""
WITH clock AS ({clock_sql("day_cost", zone)})
SELECT p.sensor_id, p.band, max(p.price) AS price, sum(p.cost_eur) AS cost_eur
FROM silver AS p, clock
WHERE p.day = clock.today
GROUP BY ALL
ORDER BY p.sensor_id, price DESC, p.band
"""


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def create_views(
    con: duckdb.DuckDBPyConnection,
    zone: str,
    tables: Iterable[str],
    wide_q3_max_sensors: int | None = None,
) -> list[str]:
    """The views q1..q4 and q3_long over those of their tables that are registered.

    The wide q3 is a SQL view only when `wide_q3_max_sensors` is given (for `sql`
    and `connect`): with up to that many sensors this month, a column each; with
    more, a view whose every query is an error naming q3_long. `query q3` lays q3
    out from its long form instead (`meterlake.read.halfhours`).
    """
    needs = {
        "q1": {"sensor_id", "month", "energy_kwh", "as_of"},
        "q2": {"sensor_id", "day", "energy_kwh", "as_of"},
        "q3_long": {"sensor_id", "day", "period_start", "energy_kwh", "as_of"},
        "q4": {"sensor_id", "day", "cost_eur", "as_of"},
    }
    present = set(tables)
    created = []
    for view, columns in needs.items():
        table = VIEW_TABLES[view]
        if table not in present:
            continue
        missing = columns - _columns(con, table)
        if missing:
            log.warning("no view %s: %s lacks %s", view, table, ", ".join(sorted(missing)))
            continue
        if view == "q1":
            body = month_view_sql(zone)
        elif view == "q3_long":
            body = halfhours.long_view_sql(zone)
        else:
            body = day_view_sql(table, "cost_eur" if view == "q4" else "energy_kwh", zone)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
        created.append(view)
    if "q3_long" in created and wide_q3_max_sensors is not None:
        sensors = halfhours.month_sensors(con, zone)
        if len(sensors) <= wide_q3_max_sensors:
            body = halfhours.wide_view_sql(sensors)
        else:
            body = halfhours.too_wide_view_sql(len(sensors), wide_q3_max_sensors)
        con.execute(f"CREATE OR REPLACE TEMP VIEW q3 AS {body}")
        created.append("q3")
    return created


# --------------------------------------------------------------------------- connections


class OutOfMemory(MeterlakeError):
    """DuckDB needed more memory than `[read] memory_limit` lets it have."""


def _new_connection(zone: str, read: ReadConf) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in the zone, held to `[read] memory_limit` and `threads`;
    what does not fit spills to a folder of the system's temporary directory."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET TimeZone = {sql_string(zone)}")
    except duckdb.Error as exc:
        con.close()
        raise MeterlakeError(f"DuckDB does not know the time zone {zone!r}") from exc
    spill = Path(tempfile.gettempdir()) / "meterlake-duckdb"
    try:
        con.execute(f"SET memory_limit = {sql_string(read.memory_limit)}")
        con.execute(f"SET threads = {int(read.threads)}")
        con.execute(f"SET temp_directory = {sql_string(str(spill))}")
    except duckdb.Error as exc:
        con.close()
        raise MeterlakeError(
            f"[read] memory_limit = {read.memory_limit!r} or threads = {read.threads!r}: "
            f"{_one_line(exc)}"
        ) from None
    return con


def _out_of_memory(exc: BaseException) -> bool:
    """DuckDB's own out-of-memory, Python's, or one an Arrow scan under DuckDB met."""
    return isinstance(exc, duckdb.OutOfMemoryException | MemoryError) or (
        isinstance(exc, duckdb.Error) and "out of memory" in str(exc).lower()
    )


@contextmanager
def memory_guard(config: Config, what: str) -> Iterator[None]:
    """DuckDB's errors while answering `what` as one line each: an out-of-memory as
    OutOfMemory, naming the setting that bounds it."""
    try:
        yield
    except (duckdb.Error, MemoryError) as exc:
        if _out_of_memory(exc):
            raise OutOfMemory(
                f"out of memory answering {what}: DuckDB may use [read] memory_limit = "
                f"{config.read.memory_limit}; raise it (e.g. --set read.memory_limit=2GB) "
                "or ask for less (a sensor, a day)"
            ) from None
        raise MeterlakeError(f"cannot answer {what}: {_one_line(exc)}") from None


def connect(
    config: Config,
    version: int | None = None,
    as_of: str | datetime | None = None,
    tables: Sequence[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake's tables registered and the views q1..q4.

    `tables` (default: every table of every layer) are registered under their
    names; by default those not in the lake yet are skipped, named ones must
    exist. `version` / `as_of` (an instant, or text for `parse_instant`) load
    every registered table at that version / as of that instant. The
    connection is not sandboxed: it is for the notebook and the tests.
    """
    return _connect(config, version, as_of, tables, wide_q3=True)[0]


def _connect(
    config: Config,
    version: int | None,
    as_of: str | datetime | None,
    tables: Sequence[str] | None,
    wide_q3: bool = False,
) -> tuple[duckdb.DuckDBPyConnection, dict[str, int]]:
    """`connect`, and the version of each table it registered."""
    zone = zone_of(config)
    when = parse_instant(as_of, zone) if isinstance(as_of, str) else as_of
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    names = list(tables) if tables is not None else list(ALL_TABLES)
    for name in names:
        config.table_path(name)  # unknown name -> MeterlakeError
    opened = {}
    for name in names:
        if tables is None and not DeltaTable.is_deltatable(str(config.table_path(name))):
            continue
        opened[name] = open_table(config, name, version, when)
    con = connect_tables(config, opened, wide_q3=wide_q3)
    return con, {name: table.version() for name, table in opened.items()}


def connect_tables(
    config: Config, tables: dict[str, DeltaTable], wide_q3: bool = False
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with these open Delta tables registered under their names,
    and the views q1..q4 and q3_long over those of their tables that are among them
    (the wide q3 as a SQL view only if `wide_q3`: see `create_views`)."""
    con = _new_connection(config.semantics.zone, config.read)
    try:
        for name, table in tables.items():
            con.register(name, arrow_source(table))
        with memory_guard(config, "the views"):
            create_views(con, config.semantics.zone, tables,
                         config.read.sql_q3_max_sensors if wide_q3 else None)
            create_more_views(con, config, tables)  # plans, health
    except BaseException:
        con.close()
        raise
    return con


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Sandbox a connection: no file or network access, no extensions, no SET."""
    for setting in SANDBOX_SETTINGS:
        con.execute(setting)


def fetch(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    zone: tzinfo,
    parameters: dict[str, object] | None = None,
) -> Result:
    """Run one query with its named parameters bound; instants come back in `zone`."""
    columns, rows = _execute(con, sql, zone, parameters)
    return Result(columns=columns, rows=list(rows))


FETCH_ROWS = 10_000  # rows fetched from DuckDB at a time


def _execute(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    zone: tzinfo,
    parameters: dict[str, object] | None = None,
) -> tuple[list[str], Iterator[tuple]]:
    """The columns of one query and its rows, fetched FETCH_ROWS at a time as they are
    read; instants come back in `zone`."""
    cursor = con.execute(sql, parameters) if parameters else con.execute(sql)
    description = cursor.description or []
    columns = [d[0] for d in description]
    instants = [i for i, d in enumerate(description) if str(d[1]) == "TIMESTAMP WITH TIME ZONE"]

    def rows() -> Iterator[tuple]:
        while batch := cursor.fetchmany(FETCH_ROWS):
            for row in batch:
                yield _localize_row(row, instants, zone) if instants else row

    return columns, rows()


def _localize_row(row: tuple, indexes: list[int], zone: tzinfo) -> tuple:
    values = list(row)
    for i in indexes:
        if isinstance(values[i], datetime) and values[i].tzinfo is not None:
            values[i] = values[i].astimezone(zone)
    return tuple(values)


def _one_line(exc: BaseException) -> str:
    """DuckDB's message on one line, without the `LINE 1: ...` excerpt and its caret."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [
        line for line in lines
        if line and not line.startswith("LINE ") and set(line) != {"^"}
    ]
    return " ".join(kept) or type(exc).__name__


# --------------------------------------------------------------------------- commands


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
    con, versions = _connect(config, version, as_of, (table,))
    with closing(con):
        return answer(con, config, view, versions[table], sensors)


def latest_as_of(config: Config, table: DeltaTable, name: str) -> datetime | None:
    """The latest `as_of` of an open gold table: the event time its answers stand at."""
    with closing(connect_tables(config, {name: table})) as con:
        return con.execute(f"SELECT max(as_of) FROM {name}").fetchone()[0]


def version_at_event_time(config: Config, name: str, at: datetime) -> int:
    """The version of gold table `name` whose answers stood at event time `at`: the
    last one whose latest as_of is at or before it (`replay --step` leaves one per
    step). A table's as_of never moves back from one version to the next
    (docs/semantics.md), so the versions are searched by halves."""
    path = str(config.table_path(name))
    versions = [c.version for c in commits_of(open_table(config, name))]

    def stood(version: int) -> datetime | None:
        return latest_as_of(config, DeltaTable(path, version=version), name)

    first = stood(versions[0])
    if first is not None and first > at:
        zone = zone_of(config)
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
        as_of=None if now is None else _local(now, zone),
        cells=cells,
    )


def _view_note(view: str, table: str, version: int, now: datetime | None, zone: tzinfo) -> str:
    if now is None:
        return f"{view}: {table} version {version} is empty"
    local = _local(now, zone)
    period = local.strftime("%Y-%m") if view == "q1" else local.date().isoformat()
    return (
        f"{view}: {VIEW_TITLES[view]} ({period}), as of {wall_clock(local, zone)} "
        f"({table} version {version})"
    )


def check_read_only(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Accept one query and nothing else, as DuckDB's own parser classifies it."""
    try:
        parsed = con.extract_statements(statement)
    except duckdb.Error as exc:
        raise MeterlakeError(f"bad SQL: {_one_line(exc)}") from None
    if not parsed:
        raise MeterlakeError("no SQL statement given")
    types = [s.type for s in parsed]
    # A PIVOT whose columns come from the data is one statement that DuckDB's
    # parser expands into two, both without text: CREATE TYPE (an ENUM of the
    # values, in memory) then the SELECT.
    dynamic_pivot = types == [duckdb.StatementType.CREATE, duckdb.StatementType.SELECT] and not any(
        s.query.strip() for s in parsed
    )
    if dynamic_pivot:
        return
    if len(parsed) > 1:
        raise MeterlakeError(f"one statement at a time, got {len(parsed)}")
    if types[0] != duckdb.StatementType.SELECT:
        raise MeterlakeError(
            f"read-only: {types[0].name} statements are not allowed, only queries "
            "(SELECT, WITH, VALUES, FROM, PIVOT, DESCRIBE, SUMMARIZE)"
        )


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs -> named parameters for `$NAME` (values as text)."""
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise MeterlakeError(f"--param wants NAME=VALUE with NAME a plain word, got {pair!r}")
        parameters[name] = value
    return parameters


def read_only_sql(
    config: Config, statement: str, parameters: dict[str, str] | None = None
) -> Result:
    """One read-only query over every table of the lake and the views q1..q4.

    `parameters` are bound to `$name` placeholders: values reach DuckDB as
    data, never as SQL text (compare with a typed column: `day = $day` casts).
    """
    with sandboxed_query(config, statement, parameters) as (columns, rows):
        return Result(columns=columns, rows=list(rows), notes=_sql_notes(columns))


def print_sql(
    config: Config,
    statement: str,
    parameters: dict[str, str] | None,
    fmt: str,
    file: TextIO | None = None,
) -> None:
    """`read_only_sql`, printed as its rows come (`meterlake sql`): any number of rows
    in bounded memory."""
    with sandboxed_query(config, statement, parameters) as (columns, rows):
        write_rows(columns, rows, fmt, file, notes=_sql_notes(columns))


def _sql_notes(columns: Sequence[str]) -> tuple[str, ...]:
    return (COST_NOTE,) if any("cost" in c.lower() for c in columns) else ()


@contextmanager
def sandboxed_query(
    config: Config, statement: str, parameters: dict[str, str] | None = None
) -> Iterator[tuple[list[str], Iterator[tuple]]]:
    """One read-only query over every table of the lake and the views: its columns and
    its rows, fetched while the block reads them; DuckDB's errors as one line each."""
    zone = zone_of(config)
    con, versions = _connect(config, None, None, None, wide_q3=True)
    with closing(con):
        check_read_only(con, statement)
        lock_down(con)
        try:
            yield _execute(con, statement, zone, parameters)
        except duckdb.PermissionException as exc:
            raise MeterlakeError(f"refused, read-only sandbox: {_one_line(exc)}") from None
        except duckdb.CatalogException as exc:
            if not versions.keys() & set(GOLD_TABLES):
                raise MeterlakeError(
                    f"no gold tables under {config.lake}: run `meterlake run --once` first"
                ) from None
            raise MeterlakeError(f"bad SQL: {_one_line(exc)}") from None
        except duckdb.Error as exc:
            if _out_of_memory(exc):
                raise OutOfMemory(
                    f"out of memory: the query needs more than [read] memory_limit = "
                    f"{config.read.memory_limit}; raise it (e.g. --set "
                    "read.memory_limit=2GB) or ask for less"
                ) from None
            raise MeterlakeError(f"bad SQL: {_one_line(exc)}") from None


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
        raise MeterlakeError(f"cannot read the history of {table}: {_one_line(exc)}") from None
    rows = [
        (
            c.version,
            _local(c.timestamp, zone),
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


# --------------------------------------------------------------------------- output


def _text(value: Any) -> str:
    """Full precision, unambiguous text: floats as repr, instants ISO with offset."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, list | tuple | dict):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return str(value)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return _text(value)


def _decimals_for(column: str) -> int:
    name = column.lower()
    if any(word in name for word in ("eur", "cost", "price")):
        return 4
    if any(word in name for word in ("kwh", "energy")):
        return 3
    return 6


def _cell(value: Any, decimals: int) -> str:
    """A value for people: rounded floats, instants as local wall-clock time."""
    if value is None:
        return "NULL"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{decimals}f}"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return wall_clock(value, value.tzinfo)
    return _text(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


TABLE_SIZING_ROWS = 10_000  # the table's column widths are those of its first rows
CELLS_AT_ONCE = 100_000  # values formatted at a time (q3 of a fleet: a row has 100,000)


def _rows_at_once(columns: Sequence[str], most: int) -> int:
    return max(1, min(most, CELLS_AT_ONCE // max(1, len(columns))))


def table_lines(
    columns: Sequence[str],
    rows: Iterable[tuple],
    decimals: int | None = None,
    notes: Sequence[str] = (),
) -> Iterator[str]:
    """An aligned table for people, line by line: numbers right-aligned and rounded,
    then the row count and the notes. Widths and alignment come from the first
    TABLE_SIZING_ROWS rows (all of them, for an answer; fewer when the rows are
    wide: CELLS_AT_ONCE values), so any number of rows prints in bounded memory."""
    places = [decimals if decimals is not None else _decimals_for(c) for c in columns]
    stream = iter(rows)
    head = list(itertools.islice(stream, _rows_at_once(columns, TABLE_SIZING_ROWS)))
    numeric = [
        any(_is_number(row[i]) for row in head)
        and all(row[i] is None or _is_number(row[i]) for row in head)
        for i in range(len(columns))
    ]
    widths = [len(c) for c in columns]
    for row in head:
        widths = [max(w, len(_cell(v, d))) for w, v, d in zip(widths, row, places, strict=True)]

    def line(values: Iterable[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip() + "\n"

    yield line(columns)
    yield line("-" * w for w in widths)
    count = 0
    for row in itertools.chain(head, stream):
        yield line(_cell(v, d) for v, d in zip(row, places, strict=True))
        count += 1
    yield f"({count} row{'' if count == 1 else 's'})\n"
    for note in notes:
        yield note + "\n"


def csv_lines(columns: Sequence[str], rows: Iterable[tuple]) -> Iterator[str]:
    """Header and full-precision values, a few rows at a time; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    stream = iter(rows)
    while batch := list(itertools.islice(stream, _rows_at_once(columns, 1000))):
        writer.writerows([("" if v is None else _text(v)) for v in row] for row in batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_lines(columns: Sequence[str], rows: Iterable[tuple]) -> Iterator[str]:
    """A list of objects, one per row and line, values at full precision."""
    first = True
    for row in rows:
        (value,) = json_objects(columns, (row,))
        yield ("[\n" if first else ",\n") + json.dumps(value, ensure_ascii=False)
        first = False
    yield "[]\n" if first else "\n]\n"


def format_table(result: Result) -> str:
    """An aligned table for people: numbers right-aligned and rounded, then the notes."""
    return "".join(table_lines(result.columns, result.rows, result.decimals, result.notes))


def format_csv(result: Result) -> str:
    """Header and full-precision values; NULL is an empty field."""
    return "".join(csv_lines(result.columns, result.rows))


def json_rows(result: Result) -> list[dict[str, Any]]:
    """The rows as JSON-ready objects (column -> value), values at full precision."""
    return json_objects(result.columns, result.rows)


def json_objects(columns: Sequence[str], rows: Iterable[tuple]) -> list[dict[str, Any]]:
    return [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def format_json(result: Result) -> str:
    """A list of objects, one per row, values at full precision."""
    return "".join(json_lines(result.columns, result.rows))


def text_chunks(result: Result, fmt: str) -> Iterator[str]:
    """`format_result`'s text a piece at a time (the CLI and the API stream it)."""
    return _chunks(result.columns, result.rows, fmt, result.decimals, result.notes)


def _chunks(
    columns: Sequence[str],
    rows: Iterable[tuple],
    fmt: str,
    decimals: int | None = None,
    notes: Sequence[str] = (),
) -> Iterator[str]:
    if fmt == "table":
        return table_lines(columns, rows, decimals, notes)
    if fmt == "csv":
        return csv_lines(columns, rows)
    if fmt == "json":
        return json_lines(columns, rows)
    raise MeterlakeError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def write_rows(
    columns: Sequence[str],
    rows: Iterable[tuple],
    fmt: str,
    file: TextIO | None = None,
    decimals: int | None = None,
    notes: Sequence[str] = (),
) -> None:
    out = file or sys.stdout
    for chunk in _chunks(columns, rows, fmt, decimals, notes):
        out.write(chunk)


def format_result(result: Result, fmt: str) -> str:
    return "".join(text_chunks(result, fmt))


def print_result(result: Result, fmt: str, file: TextIO | None = None) -> None:
    """The result in `fmt`, written a piece at a time."""
    write_rows(result.columns, result.rows, fmt, file, result.decimals, result.notes)
