"""bronze.job.to_bronze on five static Kafka rows: every message kept as it came,
bytes untouched (a key or not, valid JSON or not), with its coordinates."""

from __future__ import annotations

from datetime import datetime

from bronze.job import BRONZE_SCHEMA, to_bronze

# What Spark's Kafka source gives, in its order.
KAFKA_SCHEMA = ("key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, "
                "timestamp TIMESTAMP, timestampType INT")
AT = datetime(2024, 2, 3, 12, 0, 5)
ROWS = [
    (None, b'{"timestamp": "2024-02-03 12:00:00", "sensor_id": "X", "energy": 1.5}',
     "energy", 0, 0, AT, 0),
    (None, b'{"timestamp": "2024-02-03 12:00:00", "sensor_id": "X", "energy": 1.5}',
     "energy", 1, 0, AT, 0),  # the same message again, on another partition: kept too
    (b"Y", b'{"timestamp": "2024-02-03 12:30:00", "sensor_id": "Y", "energy": 7}',
     "energy", 2, 41, AT, 0),
    (None, b"not json \xff", "energy", 0, 1, AT, 0),
    (None, None, "energy", 0, 2, AT, 0),  # a tombstone
]


def test_to_bronze_keeps_every_message_with_its_bytes_and_coordinates(spark) -> None:
    bronze = to_bronze(spark.createDataFrame(ROWS, KAFKA_SCHEMA))
    assert [f.name for f in bronze.schema] == BRONZE_SCHEMA.fieldNames()
    rows = sorted(bronze.collect(), key=lambda r: (r.partition, r.offset))
    assert [(r.partition, r.offset) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 41)]
    by_place = {(r[2], r[3], r[4]): r for r in ROWS}
    for row in rows:
        kafka = by_place[(row.topic, row.partition, row.offset)]
        assert (row.key, row.value, row.kafka_timestamp) == (
            None if kafka[0] is None else bytearray(kafka[0]),
            None if kafka[1] is None else bytearray(kafka[1]),
            AT,
        )
        assert row.ingested_at is not None
