"""A small lake for the report tests, written with delta-rs (no Kafka, no Spark).

Three meters, 1 and 2 February 2024 (Lisbon is on UTC then, so local time =
UTC), one reading every 10 minutes from 00:00 on the 1st to 15:00 on the 2nd.
What each meter does, so that expectations can be worked out by hand:

- S01: +0.1 kWh every 10 minutes, 0.3 kWh in every half hour.
- S02: +0.05 kWh every 10 minutes, and a late reading at 06:05 on the 2nd that
  arrives last: silver appends the retraction of (06:00, 06:10) (negative kWh
  and cost, sign -1) and the two new pieces, which sum to the same.
- S03: +0.2 kWh every 10 minutes, silent on the 2nd from 03:00 to 05:00 (the
  longest gap, 120 minutes; the 2-hour interval is spread over 4 half hours).

The quarantine holds 3 bad_energy, 2 malformed_json, 1 duplicate, 1 too_late.
Gold is written in three versions after the empty one (version 0), with the
pieces of three batches: until 18:00 on the 1st, until 09:00 on the 2nd, and
the rest (the late reading included). Pieces carry the winter schedule of
conf/tariff.toml, written out below as fixture data.
"""
from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from meterlake.core.catalog import GOLD_TABLES
from tests.lake_helpers import INSTANT

COORDINATES = [("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
               ("kafka_timestamp", INSTANT)]
SCHEMAS = {
    "bronze": pa.schema([("key", pa.binary()), ("value", pa.binary()), *COORDINATES,
                         ("ingested_at", INSTANT)]),
    "readings": pa.schema([("sensor_id", pa.string()), ("event_time", INSTANT),
                           ("day", pa.date32()), ("energy", pa.float64()), *COORDINATES]),
    "silver": pa.schema([
        ("sensor_id", pa.string()), ("period_start", INSTANT), ("day", pa.date32()),
        ("month", pa.date32()), ("band", pa.string()), ("price", pa.float64()),
        ("kwh", pa.float64()), ("cost_eur", pa.float64()), ("interval_start", INSTANT),
        ("interval_end", INSTANT), ("sign", pa.int32()), *COORDINATES,
    ]),
    "quarantine": pa.schema([
        ("reason", pa.string()), ("detail", pa.string()), ("sensor_id", pa.string()),
        ("event_time", INSTANT), ("energy", pa.float64()), ("key", pa.binary()),
        ("value", pa.binary()), *COORDINATES,
    ]),
    "month_energy": pa.schema([("sensor_id", pa.string()), ("month", pa.date32()),
                               ("energy_kwh", pa.float64()), ("as_of", INSTANT),
                               ("updated_at", INSTANT)]),
    "day_energy": pa.schema([("sensor_id", pa.string()), ("day", pa.date32()),
                             ("energy_kwh", pa.float64()), ("as_of", INSTANT),
                             ("updated_at", INSTANT)]),
    "halfhour_energy": pa.schema([("sensor_id", pa.string()), ("day", pa.date32()),
                                  ("period_start", INSTANT), ("energy_kwh", pa.float64()),
                                  ("as_of", INSTANT), ("updated_at", INSTANT)]),
    "day_cost": pa.schema([("sensor_id", pa.string()), ("day", pa.date32()),
                           ("cost_eur", pa.float64()), ("as_of", INSTANT),
                           ("updated_at", INSTANT)]),
    "month_plan_cost": pa.schema([("sensor_id", pa.string()), ("month", pa.date32()),
                                  ("plan", pa.string()), ("cost_eur", pa.float64()),
                                  ("as_of", INSTANT), ("updated_at", INSTANT)]),
}
LAYER = {"bronze": "bronze", "readings": "silver", "silver": "silver", "quarantine": "silver",
         "month_energy": "gold", "day_energy": "gold", "halfhour_energy": "gold",
         "day_cost": "gold", "month_plan_cost": "gold"}

PRICES = {"ponta": 0.2400, "cheias": 0.1741, "vazio": 0.1072, "super_vazio": 0.1072}
# Winter schedule, (band, first half hour, end half hour) in half hours since midnight.
WINTER = [("vazio", 0, 4), ("super_vazio", 4, 12), ("vazio", 12, 16), ("cheias", 16, 18),
          ("ponta", 18, 21), ("cheias", 21, 36), ("ponta", 36, 41), ("cheias", 41, 44),
          ("vazio", 44, 48)]
STEP_KWH = {"S01": 0.1, "S02": 0.05, "S03": 0.2}
START = datetime(2024, 2, 1, tzinfo=UTC)
END = datetime(2024, 2, 2, 15, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)
HALF_HOUR = timedelta(minutes=30)
S03_SILENT = (datetime(2024, 2, 2, 3, 0, tzinfo=UTC), datetime(2024, 2, 2, 5, 0, tzinfo=UTC))
LATE = ("S02", datetime(2024, 2, 2, 6, 5, tzinfo=UTC))
BATCH_ENDS = (datetime(2024, 2, 1, 18, 0, tzinfo=UTC), datetime(2024, 2, 2, 9, 0, tzinfo=UTC))
QUARANTINE_REASONS = {"bad_energy": 3, "malformed_json": 2, "duplicate": 1, "too_late": 1}


def band_of(period_start: datetime) -> str:
    half_hour = (period_start.hour * 60 + period_start.minute) // 30
    return next(name for name, first, end in WINTER if first <= half_hour < end)


def _readings() -> list[tuple[str, datetime, float, int]]:
    """(sensor, time, energy, batch) in arrival order; batch 3 is the late reading."""
    rows = []
    for sensor, step in STEP_KWH.items():
        energy, t = 100.0, START
        while t <= END:
            if not (sensor == "S03" and S03_SILENT[0] < t < S03_SILENT[1]):
                rows.append((sensor, t, round(energy, 6), 0))
            energy += step
            t += TEN_MINUTES
    late_sensor, late_time = LATE
    before = max(r for r in rows if r[0] == late_sensor and r[1] < late_time)
    rows.append((late_sensor, late_time, round(before[2] + 0.02, 6), 3))
    return rows


def _pieces(sensor: str, t0: datetime, e0: float, t1: datetime, e1: float, sign: int,
            ) -> list[dict]:
    """The interval's consumption spread uniformly, cut at half hours (fixture arithmetic)."""
    out, start = [], t0
    while start < t1:
        period = start - timedelta(minutes=start.minute % 30, seconds=start.second)
        end = min(period + HALF_HOUR, t1)
        kwh = sign * (e1 - e0) * (end - start) / (t1 - t0)
        band = band_of(period)
        out.append({
            "sensor_id": sensor, "period_start": period, "day": period.date(),
            "month": period.date().replace(day=1), "band": band, "price": PRICES[band],
            "kwh": kwh, "cost_eur": kwh * PRICES[band], "interval_start": t0,
            "interval_end": t1, "sign": sign,
        })
        start = end
    return out


def _batch(t: datetime) -> int:
    return next((i for i, end in enumerate(BATCH_ENDS) if t <= end), len(BATCH_ENDS))


def _silver(readings: list[tuple[str, datetime, float, int]]) -> list[dict]:
    pieces = []
    for sensor in STEP_KWH:
        ordered = sorted((t, e) for s, t, e, b in readings if s == sensor and b < 3)
        for (t0, e0), (t1, e1) in itertools.pairwise(ordered):
            pieces += [{**p, "batch": _batch(t1)} for p in _pieces(sensor, t0, e0, t1, e1, 1)]
    late_sensor, late_time = LATE
    late = next(r for r in readings if r[3] == 3)
    ordered = sorted((t, e) for s, t, e, b in readings if s == late_sensor and b < 3)
    (t0, e0) = max(r for r in ordered if r[0] < late_time)
    (t1, e1) = min(r for r in ordered if r[0] > late_time)
    for args in ((t0, e0, t1, e1, -1), (t0, e0, late[1], late[2], 1),
                 (late[1], late[2], t1, e1, 1)):
        pieces += [{**p, "batch": 3} for p in _pieces(late_sensor, *args)]
    return pieces


def _coordinates(offset: int, t: datetime) -> dict:
    return {"topic": "energy", "partition": 0, "offset": offset, "kafka_timestamp": t}


def _quarantine() -> list[dict]:
    rows, minute = [], 0
    for reason, count in QUARANTINE_REASONS.items():
        for i in range(count):
            sensor = ("S01", "S02", "S03")[i % 3]
            t = START + timedelta(hours=10, minutes=minute)
            minute += 7
            energy = -1.0 if reason == "bad_energy" else 100.0
            value = (b"{not json" if reason == "malformed_json" else json.dumps(
                {"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "sensor_id": sensor,
                 "energy": energy}).encode())
            rows.append({"reason": reason, "detail": f"fixture {reason}",
                         "sensor_id": None if reason == "malformed_json" else sensor,
                         "event_time": None if reason == "malformed_json" else t,
                         "energy": None if reason == "malformed_json" else energy,
                         "key": sensor.encode(), "value": value, **_coordinates(0, t)})
    return rows


def write_table(lake: Path, table: str, rows: list[dict], mode: str = "overwrite") -> None:
    data = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    write_deltalake(str(lake / LAYER[table] / table), data, mode=mode)


def _gold(pieces: pd.DataFrame, written: datetime) -> dict[str, list[dict]]:
    keys = {"month_energy": (["sensor_id", "month"], "kwh", "energy_kwh"),
            "day_energy": (["sensor_id", "day"], "kwh", "energy_kwh"),
            "halfhour_energy": (["sensor_id", "day", "period_start"], "kwh", "energy_kwh"),
            "day_cost": (["sensor_id", "day"], "cost_eur", "cost_eur")}
    out = {}
    for table, (key, source, value) in keys.items():
        summed = pieces.groupby(key, as_index=False).agg(
            **{value: (source, "sum"), "as_of": ("interval_end", "max")})
        summed["updated_at"] = written
        out[table] = [{k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
                       for k, v in row.items()} for row in summed.to_dict("records")]
    return out


def build_report_lake(lake: Path) -> Path:
    """Write the whole small lake under `lake`; gold gets versions 0 (empty) to 3."""
    readings = _readings()
    bronze, accepted = [], []
    for offset, (sensor, t, energy, _) in enumerate(readings):
        value = json.dumps({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "sensor_id": sensor,
                            "energy": energy}).encode()
        bronze.append({"key": sensor.encode(), "value": value, **_coordinates(offset, t),
                       "ingested_at": t})
        accepted.append({"sensor_id": sensor, "event_time": t, "day": t.date(),
                         "energy": energy, **_coordinates(offset, t)})
    quarantine = _quarantine()
    for i, row in enumerate(quarantine, start=len(bronze)):
        bronze.append({"key": row["key"], "value": row["value"],
                       **_coordinates(i, row["kafka_timestamp"]),
                       "ingested_at": row["kafka_timestamp"]})
        row["offset"] = i
    write_table(lake, "bronze", bronze)
    write_table(lake, "readings", accepted)
    write_table(lake, "quarantine", quarantine)
    pieces = _silver(readings)
    rows = [{k: v for k, v in p.items() if k != "batch"} | _coordinates(0, START) for p in pieces]
    write_table(lake, "silver", rows)
    frame = pd.DataFrame(pieces)
    for table in GOLD_TABLES:
        write_table(lake, table, [])
    for batch in range(3):
        written = BATCH_ENDS[batch] if batch < len(BATCH_ENDS) else END
        upto = frame[frame["batch"] <= batch + (1 if batch == 2 else 0)]
        for table, rows in _gold(upto, written + timedelta(minutes=1)).items():
            write_table(lake, table, rows)
    return lake


def expected_s01_cost_today() -> dict[str, float]:
    """S01 on 2 February, 00:00 to 15:00: 0.3 kWh per half hour, by band (hand count)."""
    periods = {"vazio": 4 + 4, "super_vazio": 8, "ponta": 3, "cheias": 2 + 9}
    return {band: n * 0.3 * PRICES[band] for band, n in periods.items()}


TODAY = date(2024, 2, 2)
