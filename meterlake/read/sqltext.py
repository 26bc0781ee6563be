"""SQL text shared by the views: quoting, and the clock every view starts from."""
from __future__ import annotations


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clock_sql(table: str, zone: str) -> str:
    """One row: `now` (latest as_of of the table) and `today` (its local date)."""
    local_now = f"timezone({sql_string(zone)}, max(as_of))"
    return f"SELECT max(as_of) AS now, CAST({local_now} AS DATE) AS today FROM {table}"
