"""Queries and files: the views and ad-hoc SQL over gold, lake vs an in-memory copy,
the views through `meterlake serve`'s API, file counts, and query time before vs after
compaction (OPTIMIZE)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterlake.core import compaction
from meterlake.core.catalog import LAYER_TABLES
from meterlake.core.config import Config

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

GOLD = LAYER_TABLES["gold"]
SILVER = LAYER_TABLES["silver"]
VIEWS = ("q1", "q2", "q3", "q4")
ADHOC = {
    "top5_last_7_days": """
        SELECT sensor_id, sum(energy_kwh) AS kwh FROM day_energy
        WHERE day > (SELECT max(day) - 7 FROM day_energy)
        GROUP BY sensor_id ORDER BY kwh DESC LIMIT 5""",
    "halfhour_profile": """
        SELECT strftime(period_start, '%H:%M') AS slot, avg(energy_kwh) AS kwh
        FROM halfhour_energy GROUP BY slot ORDER BY slot""",
    "daily_price_per_kwh": """
        SELECT c.day, sum(c.cost_eur) AS eur, sum(e.energy_kwh) AS kwh,
               sum(c.cost_eur) / nullif(sum(e.energy_kwh), 0) AS eur_per_kwh
        FROM day_cost AS c JOIN day_energy AS e USING (sensor_id, day)
        GROUP BY c.day ORDER BY c.day""",
}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _timed(fn, reps: int) -> dict[str, float]:
    fn()  # warm-up (imports, first file reads)
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return {
        "p50_ms": round(sorted(times)[len(times) // 2] * 1000, 2),
        "p95_ms": round(_p95(times) * 1000, 2),
        "reps": reps,
    }


def on_lake(config: Config, reps: int) -> dict[str, dict[str, float]]:
    """Each view through query_view (what `meterlake query` runs: opens its gold table),
    each ad-hoc query through a fresh connection over the gold tables (as `sql` does)."""
    from meterlake.read.answers import query_view
    from meterlake.read.connection import connect

    out = {}
    for view in VIEWS:
        out[view] = _timed(lambda v=view: query_view(config, v), reps)
    for name, sql in ADHOC.items():
        def run(sql=sql) -> None:
            con = connect(config, tables=GOLD)
            try:
                con.execute(sql).fetchall()
            finally:
                con.close()
        out[name] = _timed(run, reps)
    return out


def on_open_lake(config: Config, reps: int) -> dict[str, dict[str, float]]:
    """The same queries on ONE connection reused (tables opened once): the
    scan of the Arrow datasets without the cost of opening the Delta tables; plus the
    cost of opening them alone (`connect`)."""
    from meterlake.read.connection import connect

    out = {"connect": _timed(lambda: connect(config, tables=GOLD).close(), reps)}
    con = connect(config, tables=GOLD)
    try:
        for view in VIEWS:
            out[view] = _timed(lambda v=view: con.execute(f"SELECT * FROM {v}").fetchall(), reps)
        for name, sql in ADHOC.items():
            out[name] = _timed(lambda s=sql: con.execute(s).fetchall(), reps)
    finally:
        con.close()
    return out


def memory_copy(config: Config) -> duckdb.DuckDBPyConnection:
    """The gold tables loaded into DuckDB's own tables, with the same views (the wide
    q3 as `connect` makes it: a SQL view up to `[read] sql_q3_max_sensors`)."""
    import duckdb
    from deltalake import DeltaTable

    from meterlake.read.views import create_views

    con = duckdb.connect(":memory:")
    con.execute(f"SET TimeZone = '{config.semantics.zone}'")
    for table in GOLD:
        con.register("source", DeltaTable(str(config.table_path(table))).to_pyarrow_table())
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM source")
        con.unregister("source")
    create_views(con, config.semantics.zone, GOLD, config.read.sql_q3_max_sensors)
    return con


def in_memory(config: Config, reps: int) -> dict[str, dict[str, float]]:
    con = memory_copy(config)
    try:
        out = {}
        for view in VIEWS:
            out[view] = _timed(lambda v=view: con.execute(f"SELECT * FROM {v}").fetchall(), reps)
        for name, sql in ADHOC.items():
            out[name] = _timed(lambda s=sql: con.execute(s).fetchall(), reps)
        return out
    finally:
        con.close()


def served(config: Config, reps: int, cached: bool = True) -> dict[str, dict[str, float]]:
    """Each view through `meterlake serve`'s API, `GET /api/qN` over one kept-alive HTTP
    connection on loopback: request, the answer (cached per gold version, or with
    `cached=False` queried on the open tables every time), JSON, response."""
    import http.client

    from meterlake.app import web
    from meterlake.core.net import free_port
    from meterlake.read.livegold import LiveGold

    gold = LiveGold(config, cached_answers=512 if cached else 0)
    port = free_port()
    with web.running(config, "127.0.0.1", port, gold):
        http_con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def get(path: str) -> None:
            http_con.request("GET", path)
            response = http_con.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")

        try:
            return {view: _timed(lambda v=view: get(f"/api/{v}"), reps) for view in VIEWS}
        finally:
            http_con.close()


def file_counts(config: Config, tables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per table: files in the current version (Delta's numFiles), parquet files on disk
    (all versions), versions, and the size of the current version."""
    from deltalake import DeltaTable

    out = {}
    for table in tables:
        path = config.table_path(table)
        dt = DeltaTable(str(path))
        actions = dt.get_add_actions(flatten=True)
        sizes = actions.column("size_bytes").to_pylist() if actions.num_rows else []
        out[table] = {
            "num_files": actions.num_rows,
            "parquet_on_disk": sum(1 for _ in Path(path).rglob("*.parquet")),
            "versions": dt.version() + 1,
            "mb": round(sum(sizes) / 1e6, 3),
        }
    return out


def compact(spark: SparkSession, config: Config, tables: tuple[str, ...]) -> float:
    """Bin-packing compaction (meterlake.core.compaction); seconds."""
    began = time.monotonic()
    for table in tables:
        compaction.compact(str(config.table_path(table)))
    return time.monotonic() - began
