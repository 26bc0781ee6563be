"""DuckDB over the Delta lake: connections with the lake's tables and the views.

How the lake is read
--------------------
Each Delta table is opened with the `deltalake` package (delta-rs), turned into
a lazy pyarrow dataset (`DeltaTable.to_pyarrow_dataset()`) and registered in an
in-memory DuckDB connection, which scans it lazily and pushes filters and
projections down to the Parquet files. Why not DuckDB's own `delta` extension:

- time travel by version *and* by timestamp: delta-rs loads any version, and we
  pick the version for a timestamp ourselves from the commit history (the
  DuckDB extension offers versions only; meterlake.read.travel);
- it works offline: nothing to `INSTALL`, no extension download, no extension
  binary tied to one DuckDB release;
- the pyarrow dataset is read by Python code (delta-rs' file system), so DuckDB
  can run with `enable_external_access=false` and still scan the lake
  (meterlake.read.sandbox).

Tables whose protocol needs deletion vectors or column mapping cannot become a
pyarrow dataset; they are read through delta-rs' own scan and materialised in
memory instead (correct, just not lazy).

A connection is held to `[read] memory_limit` and `threads`, and its TimeZone is set
to the configured zone, so nothing depends on the machine's; instants come back in
that zone (meterlake.read.clock).
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaProtocolError

from meterlake.core import catalog
from meterlake.core.config import Config, ReadConf
from meterlake.core.errors import MeterlakeError, one_line
from meterlake.read.clock import parse_instant, zone_of
from meterlake.read.more_views import create_more_views
from meterlake.read.result import Result
from meterlake.read.sqltext import sql_string
from meterlake.read.travel import open_table
from meterlake.read.views import create_views

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

ALL_TABLES: tuple[str, ...] = catalog.names()


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
            f"{one_line(exc)}"
        ) from None
    return con


def out_of_memory(exc: BaseException) -> bool:
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
        if out_of_memory(exc):
            raise OutOfMemory(
                f"out of memory answering {what}: DuckDB may use [read] memory_limit = "
                f"{config.read.memory_limit}; raise it (e.g. --set read.memory_limit=2GB) "
                "or ask for less (a sensor, a day)"
            ) from None
        raise MeterlakeError(f"cannot answer {what}: {one_line(exc)}") from None


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
    return connect_with_versions(config, version, as_of, tables, wide_q3=True)[0]


def connect_with_versions(
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


def fetch(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    zone: tzinfo,
    parameters: dict[str, object] | None = None,
) -> Result:
    """Run one query with its named parameters bound; instants come back in `zone`."""
    columns, rows = execute(con, sql, zone, parameters)
    return Result(columns=columns, rows=list(rows))


FETCH_ROWS = 10_000  # rows fetched from DuckDB at a time


def execute(
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
