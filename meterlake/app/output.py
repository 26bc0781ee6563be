"""The CLI's formats: a result as an aligned table for people, as CSV or as JSON at
full precision, written a piece at a time so any number of rows prints in bounded
memory. The page's API serves the JSON of `meterlake query --format json` byte for
byte (meterlake.app.web).

Instants print in full with their offset in CSV and JSON (ISO 8601), as local
wall-clock time in the table (`meterlake.read.clock.wall_clock`).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.clock import wall_clock
from meterlake.read.result import Result
from meterlake.read.sandbox import sandboxed_query, sql_notes

FORMATS = ("table", "csv", "json")


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
        write_rows(columns, rows, fmt, file, notes=sql_notes(columns))
