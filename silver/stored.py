"""The step's output rows -> the columns the silver tables store, in Arrow.

The stateful step (silver.bucket) hands Spark one value per bucket and batch: its
output rows with every stored column (instants as UTC timestamps, local days and
months in the meters' zone), as an Arrow IPC stream (`encode`). The driver's
foreachBatch decodes them (`decode`) and splits them by table (silver.job.split).
Spark moves a few large values instead of converting every output row to its own
rows and back to Arrow (the stored columns were computed in Spark before: twice the
time of the whole step on 2 cores).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

INSTANT = pa.timestamp("us", tz="UTC")
# Every column a silver table stores, in this order; `kind` says which table a row is for.
STORED = pa.schema([
    ("kind", pa.string()),
    ("sensor_id", pa.string()),
    ("event_time", INSTANT),  # reading: its instant; piece: the closing reading's
    ("event_day", pa.date32()),  # local day of event_time
    ("energy", pa.float64()),
    ("period_start", INSTANT),
    ("period_day", pa.date32()),  # local day of period_start
    ("month", pa.date32()),  # its first day
    ("band", pa.string()),
    ("price", pa.float64()),
    ("kwh", pa.float64()),
    ("cost_eur", pa.float64()),
    ("interval_start", INSTANT),
    ("interval_end", INSTANT),
    ("sign", pa.int32()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("key", pa.binary()),
    ("value", pa.binary()),
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("kafka_timestamp", INSTANT),
])  # fmt: skip
# Spark's type of the step's output: one Arrow IPC stream of STORED rows per call.
OUTPUT_DDL = "rows BINARY"


def _instant(frame: pd.DataFrame, name: str) -> pa.Array:
    return pa.array(frame[name], pa.int64(), from_pandas=True).cast(INSTANT)


def _local(instants: pa.Array, zone: str) -> pa.Array:
    """UTC instants -> the naive local times in zone."""
    return pc.local_timestamp(instants.cast(pa.timestamp("us", tz=zone)))


def stored_rows(frame: pd.DataFrame, zone: str) -> pa.Table:
    """The step's output frame (silver.judge.OUTPUT_COLUMNS) -> STORED rows."""
    event_time, period_start = _instant(frame, "ts_us"), _instant(frame, "period_start_us")
    period_local = _local(period_start, zone)
    columns = {
        "event_time": event_time,
        "event_day": _local(event_time, zone).cast(pa.date32()),
        "period_start": period_start,
        "period_day": period_local.cast(pa.date32()),
        "month": pc.floor_temporal(period_local, unit="month").cast(pa.date32()),
        "interval_start": _instant(frame, "interval_start_us"),
        "interval_end": _instant(frame, "interval_end_us"),
        "kafka_timestamp": _instant(frame, "kafka_ts_us"),
    }
    arrays = [
        columns[f.name] if f.name in columns
        else pa.array(frame[f.name], f.type, from_pandas=True)
        for f in STORED
    ]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=STORED)


def encode(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue().to_pybytes()


def decode(values: Iterable[bytes | None]) -> pa.Table:
    """The step's values of a batch -> one table of STORED rows."""
    tables = [pa.ipc.open_stream(v).read_all() for v in values if v]
    return pa.concat_tables(tables) if tables else STORED.empty_table()
