"""Small Delta tables written with delta-rs, shaped like gold (no Spark): for the
read-side tests (tests/read/test_lake.py, tests/read/test_serve_api.py)."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
from deltalake import write_deltalake

from meterlake.core.config import Config

INSTANT = pa.timestamp("us", tz="UTC")
GOLD_SCHEMAS = {
    "month_energy": pa.schema([
        ("sensor_id", pa.string()), ("month", pa.date32()), ("energy_kwh", pa.float64()),
        ("as_of", INSTANT), ("updated_at", INSTANT),
    ]),
    "day_energy": pa.schema([
        ("sensor_id", pa.string()), ("day", pa.date32()), ("energy_kwh", pa.float64()),
        ("as_of", INSTANT), ("updated_at", INSTANT),
    ]),
    "halfhour_energy": pa.schema([
        ("sensor_id", pa.string()), ("day", pa.date32()), ("period_start", INSTANT),
        ("energy_kwh", pa.float64()), ("as_of", INSTANT), ("updated_at", INSTANT),
    ]),
    "day_cost": pa.schema([
        ("sensor_id", pa.string()), ("day", pa.date32()), ("cost_eur", pa.float64()),
        ("as_of", INSTANT), ("updated_at", INSTANT),
    ]),
}
BRONZE_SCHEMA = pa.schema([
    ("key", pa.binary()), ("value", pa.binary()), ("topic", pa.string()),
    ("partition", pa.int32()), ("offset", pa.int64()), ("kafka_timestamp", INSTANT),
    ("ingested_at", INSTANT),
])


def utc(text: str) -> datetime:
    """An instant from 'YYYY-MM-DD HH:MM[:SS]' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(config: Config, table: str, rows: list[dict], mode: str = "append", **kw) -> None:
    schema = GOLD_SCHEMAS.get(table, BRONZE_SCHEMA)
    updated = utc("2024-01-01 00:00")
    rows = [{"updated_at": updated, **row} for row in rows]
    data = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(str(config.table_path(table)), data, mode=mode, **kw)


def month_row(sensor: str, month: str, kwh: float, as_of: str) -> dict:
    return {"sensor_id": sensor, "month": date.fromisoformat(month), "energy_kwh": kwh,
            "as_of": utc(as_of)}


def day_row(sensor: str, day: str, value: float, as_of: str, column: str = "energy_kwh") -> dict:
    return {"sensor_id": sensor, "day": date.fromisoformat(day), column: value,
            "as_of": utc(as_of)}


def halfhour_row(sensor: str, day: str, start: str, kwh: float, as_of: str) -> dict:
    return {"sensor_id": sensor, "day": date.fromisoformat(day), "period_start": utc(start),
            "energy_kwh": kwh, "as_of": utc(as_of)}
