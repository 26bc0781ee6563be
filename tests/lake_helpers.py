"""Small Delta tables written with delta-rs, shaped like gold (no Spark): for the
read-side tests (tests/read/test_lake.py, tests/read/test_serve_api.py)."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
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
    ("ingested_at", INSTANT), ("released_before", INSTANT),
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


def fleet_energy(meter: np.ndarray, period: np.ndarray) -> np.ndarray:
    """The kWh of fleet meter `meter` (0, 1, ...) in half hour `period` (0..47) of a day:
    (meter mod 100) / 100 + period / 1000, easy to compute by hand."""
    return (meter % 100) / 100 + period / 1000


def fleet_id(meter: int) -> str:
    return f"M{meter:06d}"


def write_fleet_gold(config: Config, meters: int, day: str) -> None:
    """All four gold tables for `meters` meters over `day` and the day before (February,
    so UTC is Lisbon time), written with delta-rs, partitioned as gold is: every meter
    has the 48 half hours (`fleet_energy`) of the day before; on `day`, meters whose
    number ends in 9 have nothing (an empty q3 column), the others the 48 half hours.
    "Now" (the latest as_of) is `day` 23:45; cost is 0.1 EUR per kWh."""
    today = date.fromisoformat(day)
    ids = np.array([fleet_id(m) for m in range(meters)], dtype=object)
    month_kwh = np.zeros(meters)
    for day_index, when in enumerate((date.fromordinal(today.toordinal() - 1), today)):
        meter = np.repeat(np.arange(meters), 48)
        period = np.tile(np.arange(48), meters)
        if when == today:
            keep = meter % 10 != 9
            meter, period = meter[keep], period[keep]
        kwh = fleet_energy(meter, period)
        midnight = datetime.combine(when, datetime.min.time(), tzinfo=UTC)
        as_of = midnight + timedelta(hours=23, minutes=45)
        starts = np.datetime64(midnight.replace(tzinfo=None), "us") + (
            period * 30 * 60 * 1_000_000).astype("timedelta64[us]")
        halfhours = pa.table({
            "sensor_id": pa.array(ids[meter], pa.string()),
            "day": pa.array(np.full(meter.size, np.datetime64(when, "D")), pa.date32()),
            "period_start": pa.array(starts, INSTANT),
            "energy_kwh": kwh,
            "as_of": pa.array(np.full(meter.size, np.datetime64(as_of.replace(tzinfo=None),
                                                                 "us")), INSTANT),
            "updated_at": pa.array(np.full(meter.size, np.datetime64(as_of.replace(tzinfo=None),
                                                                      "us")), INSTANT),
        })
        write_deltalake(str(config.table_path("halfhour_energy")), halfhours, mode="append",
                        partition_by=["day"])
        per_meter = np.bincount(meter, kwh, minlength=meters)
        month_kwh += per_meter
        present = np.unique(meter)
        days = _fleet_rows(ids[present], when, per_meter[present], as_of)
        write_deltalake(str(config.table_path("day_energy")), days, mode="append",
                        partition_by=["day"])
        costs = _fleet_rows(ids[present], when, per_meter[present] * 0.1, as_of, "cost_eur")
        write_deltalake(str(config.table_path("day_cost")), costs, mode="append",
                        partition_by=["day"])
    months = _fleet_rows(ids, today.replace(day=1), month_kwh, as_of, "energy_kwh", "month")
    write_deltalake(str(config.table_path("month_energy")), months, mode="append",
                    partition_by=["month"])


def _fleet_rows(ids: np.ndarray, when: date, values: np.ndarray, as_of: datetime,
                column: str = "energy_kwh", key: str = "day") -> pa.Table:
    stamp = np.full(ids.size, np.datetime64(as_of.replace(tzinfo=None), "us"))
    return pa.table({
        "sensor_id": pa.array(ids, pa.string()),
        key: pa.array(np.full(ids.size, np.datetime64(when, "D")), pa.date32()),
        column: values,
        "as_of": pa.array(stamp, INSTANT),
        "updated_at": pa.array(stamp, INSTANT),
    })
