"""Silver's batch -> its three tables (silver.job.stored_columns, split): one Spark job
computes every stored column, Arrow splits the rows by kind; each table gets exactly
its schema's columns, local days and months in the meters' zone (the session's)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from silver.job import (
    PIECES_SCHEMA,
    QUARANTINE_SCHEMA,
    READINGS_SCHEMA,
    split,
    stored_columns,
)
from silver.judge import OUTPUT_DDL


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
               "kafka_timestamp": datetime(2024, 4, 1, tzinfo=UTC)}


def _output(spark, *rows: dict):
    names = [part.split("`")[1] for part in OUTPUT_DDL.split(", ")]
    values = [tuple({**COORDINATES, **row}.get(name) for name in names) for row in rows]
    return spark.createDataFrame(values, OUTPUT_DDL)


def test_each_table_gets_its_rows_with_its_schemas_columns(spark) -> None:
    tables = split(stored_columns(_output(spark, READING, PIECE, FLAG, READING)).toArrow())
    assert {name: t.column_names for name, t in tables.items()} == {
        "readings": READINGS_SCHEMA.fieldNames(),
        "silver": PIECES_SCHEMA.fieldNames(),
        "quarantine": QUARANTINE_SCHEMA.fieldNames(),
    }
    assert tables["readings"].num_rows == 2
    reading = tables["readings"].to_pylist()[0]
    assert (reading["sensor_id"], reading["day"], reading["energy"], reading["offset"]) == (
        "s1", date(2024, 4, 1), 1234.5, 41)
    assert reading["event_time"].astimezone(UTC) == datetime(2024, 3, 31, 23, 10, tzinfo=UTC)
    piece = tables["silver"].to_pylist()[0]
    assert (piece["day"], piece["month"], piece["band"], piece["kwh"], piece["sign"]) == (
        date(2024, 4, 1), date(2024, 4, 1), "vazio", 0.25, 1)
    assert piece["interval_start"].astimezone(UTC) == datetime(2024, 3, 31, 22, 50, tzinfo=UTC)
    flag = tables["quarantine"].to_pylist()[0]
    assert (flag["reason"], flag["value"], flag["event_time"], flag["partition"]) == (
        "BAD_JSON", b"{oops", None, 3)


def test_a_table_without_rows_in_the_batch_is_left_out(spark) -> None:
    assert list(split(stored_columns(_output(spark, READING)).toArrow())) == ["readings"]
    assert split(stored_columns(_output(spark)).toArrow()) == {}
