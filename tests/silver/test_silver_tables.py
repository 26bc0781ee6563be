"""The step's output rows -> silver's three tables (silver.stored, silver.job.split): the
step computes every stored column (local days and months in the meters' zone) and
hands them to Spark as Arrow; the driver splits the rows by kind, each table getting
exactly its schema's columns."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from silver.job import PIECES_SCHEMA, QUARANTINE_SCHEMA, READINGS_SCHEMA, split
from silver.judge import OUTPUT_COLUMNS
from silver.stored import STORED, decode, encode, stored_rows

ZONE = "Europe/Lisbon"


def _us(*moment: int) -> int:
    return int(datetime(*moment, tzinfo=UTC).timestamp() * 1e6)


# 2024-03-31 23:10 UTC is 2024-04-01 00:10 in Lisbon (summer time since that night);
# the piece's period began at 23:00 UTC on the 31st, 00:00 local on April 1st.
READING = {"kind": "reading", "sensor_id": "s1", "ts_us": _us(2024, 3, 31, 23, 10),
           "energy": 1234.5}
PIECE = {"kind": "piece", "sensor_id": "s1", "ts_us": _us(2024, 3, 31, 23, 10),
         "period_start_us": _us(2024, 3, 31, 23), "band": "vazio", "price": 0.1,
         "kwh": 0.25, "cost_eur": 0.025, "interval_start_us": _us(2024, 3, 31, 22, 50),
         "interval_end_us": _us(2024, 3, 31, 23, 10), "sign": 1}
FLAG = {"kind": "flag", "sensor_id": "s2", "ts_us": None, "reason": "BAD_JSON",
        "detail": "not JSON", "key": None, "value": b"{oops"}
COORDINATES = {"topic": "energy", "partition": 3, "offset": 41,
               "kafka_ts_us": _us(2024, 4, 1)}


def _output(*rows: dict) -> pd.DataFrame:
    """Rows as the step builds them (silver.judge.Rows.frame: nullable integers)."""
    frame = pd.DataFrame([{**COORDINATES, **row} for row in rows], columns=list(OUTPUT_COLUMNS))
    ints = {n: "Int64" for n, kind in OUTPUT_COLUMNS.items() if kind in ("bigint", "int")}
    return frame.astype(ints)


def test_each_table_gets_its_rows_with_its_schemas_columns() -> None:
    tables = split(stored_rows(_output(READING, PIECE, FLAG, READING), ZONE))
    assert {name: t.column_names for name, t in tables.items()} == {
        "readings": READINGS_SCHEMA.fieldNames(),
        "silver": PIECES_SCHEMA.fieldNames(),
        "quarantine": QUARANTINE_SCHEMA.fieldNames(),
    }
    assert tables["readings"].num_rows == 2
    reading = tables["readings"].to_pylist()[0]
    assert (reading["sensor_id"], reading["day"], reading["energy"], reading["offset"]) == (
        "s1", date(2024, 4, 1), 1234.5, 41)
    assert reading["event_time"] == datetime(2024, 3, 31, 23, 10, tzinfo=UTC)
    assert reading["kafka_timestamp"] == datetime(2024, 4, 1, tzinfo=UTC)
    piece = tables["silver"].to_pylist()[0]
    assert (piece["day"], piece["month"], piece["band"], piece["kwh"], piece["sign"]) == (
        date(2024, 4, 1), date(2024, 4, 1), "vazio", 0.25, 1)
    assert piece["interval_start"] == datetime(2024, 3, 31, 22, 50, tzinfo=UTC)
    flag = tables["quarantine"].to_pylist()[0]
    assert (flag["reason"], flag["value"], flag["event_time"], flag["partition"]) == (
        "BAD_JSON", b"{oops", None, 3)


def test_a_month_is_its_first_local_day() -> None:
    # 2024-02-29 23:45 UTC is still February in Lisbon (winter: UTC+0); 2024-05-31 23:30
    # UTC is June 1st 00:30 there (summer: UTC+1).
    rows = [{**PIECE, "period_start_us": _us(2024, 2, 29, 23, 30)},
            {**PIECE, "period_start_us": _us(2024, 5, 31, 23, 30)}]
    stored = stored_rows(_output(*rows), ZONE).to_pydict()
    assert stored["period_day"] == [date(2024, 2, 29), date(2024, 6, 1)]
    assert stored["month"] == [date(2024, 2, 1), date(2024, 6, 1)]


def test_the_rows_cross_to_the_driver_as_arrow() -> None:
    calls = [encode(stored_rows(_output(READING, FLAG), ZONE)), None,
             encode(stored_rows(_output(PIECE), ZONE))]
    rows = decode(calls)
    assert rows.schema == STORED
    assert rows["kind"].to_pylist() == ["reading", "flag", "piece"]
    assert decode([]).schema == STORED and decode([]).num_rows == 0


def test_a_table_without_rows_in_the_batch_is_left_out() -> None:
    assert list(split(stored_rows(_output(READING), ZONE))) == ["readings"]
    assert split(stored_rows(_output(), ZONE)) == {}
