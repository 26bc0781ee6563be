"""`meterlake sql`: one read-only query over every table of the lake and the views.

The query runs in a sandbox: one statement, which DuckDB's parser must classify as
a query (SELECT, WITH, VALUES, FROM, TABLE, PIVOT, DESCRIBE, SUMMARIZE); then the
connection runs with external access off (no files, no ATTACH, no extensions) and
its configuration locked, so a query cannot turn it back on. Values of `--param`
are bound to `$name` placeholders, never pasted into the SQL text.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager

import duckdb

from meterlake.core.catalog import GOLD_TABLES
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError, one_line
from meterlake.read.clock import zone_of
from meterlake.read.connection import OutOfMemory, connect_with_versions, execute, out_of_memory
from meterlake.read.result import Result
from meterlake.read.views import COST_NOTE

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


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Sandbox a connection: no file or network access, no extensions, no SET."""
    for setting in SANDBOX_SETTINGS:
        con.execute(setting)


def check_read_only(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Accept one query and nothing else, as DuckDB's own parser classifies it."""
    try:
        parsed = con.extract_statements(statement)
    except duckdb.Error as exc:
        raise MeterlakeError(f"bad SQL: {one_line(exc)}") from None
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
        return Result(columns=columns, rows=list(rows), notes=sql_notes(columns))


def sql_notes(columns: Sequence[str]) -> tuple[str, ...]:
    """The notes under a query's rows: the cost note when a column is a cost."""
    return (COST_NOTE,) if any("cost" in c.lower() for c in columns) else ()


@contextmanager
def sandboxed_query(
    config: Config, statement: str, parameters: dict[str, str] | None = None
) -> Iterator[tuple[list[str], Iterator[tuple]]]:
    """One read-only query over every table of the lake and the views: its columns and
    its rows, fetched while the block reads them; DuckDB's errors as one line each."""
    zone = zone_of(config)
    con, versions = connect_with_versions(config, None, None, None, wide_q3=True)
    with closing(con):
        check_read_only(con, statement)
        lock_down(con)
        try:
            yield execute(con, statement, zone, parameters)
        except duckdb.PermissionException as exc:
            raise MeterlakeError(f"refused, read-only sandbox: {one_line(exc)}") from None
        except duckdb.CatalogException as exc:
            if not versions.keys() & set(GOLD_TABLES):
                raise MeterlakeError(
                    f"no gold tables under {config.lake}: run `meterlake run --once` first"
                ) from None
            raise MeterlakeError(f"bad SQL: {one_line(exc)}") from None
        except duckdb.Error as exc:
            if out_of_memory(exc):
                raise OutOfMemory(
                    f"out of memory: the query needs more than [read] memory_limit = "
                    f"{config.read.memory_limit}; raise it (e.g. --set "
                    "read.memory_limit=2GB) or ask for less"
                ) from None
            raise MeterlakeError(f"bad SQL: {one_line(exc)}") from None
