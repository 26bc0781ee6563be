"""A class-data-sharing archive of Spark's driver JVM: `make setup` writes it once.

A Spark driver loads some 20,000 classes when it starts, from jars, verifying each:
on 2 cores that is most of the 11 cpu-s a session takes to start. A JVM started with
`-XX:SharedArchiveFile` maps the classes an earlier run archived instead (Java's
class data sharing, JEP 350): the same session started in 6 cpu-s. Every `meterlake
run` and `replay` starts a driver, so each starts that much sooner.

The archive is written by a driver started with `-XX:ArchiveClassesAtExit`, which
runs silver and gold over a few messages in a scratch lake (no broker needed) and
then exits, archiving what it loaded. It belongs to the jars it was made from: a JVM
whose class path differs ignores it and loads its classes as before
(meterlake.core.session adds it with the JVM's own messages about it off).

    python -m meterlake.app.classarchive   # (re)write .jars/spark-driver.jsa
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema

from bronze.horizon import ALL
from bronze.job import BRONZE_SCHEMA, with_horizon
from meterlake.core.config import Config, load_config
from meterlake.core.session import ARCHIVE_QUIET, class_archive
from meterlake.tools.publish import reading_message


def _messages(config: Config) -> pa.Table:
    """A few readings of two meters as one bronze commit, with its release horizon."""
    rows = []
    for n in range(6):
        at = datetime(2024, 2, 5, 10, 0, tzinfo=UTC) + timedelta(minutes=15 * n)
        for sensor in ("A", "B"):
            key, value = reading_message(at.strftime("%Y-%m-%d %H:%M:%S"), sensor, 100 + n)
            rows.append({"key": key, "value": value, "topic": config.kafka.topic,
                         "partition": 0, "offset": len(rows), "kafka_timestamp": at,
                         "ingested_at": at, "released_before": None})
    schema = to_arrow_schema(BRONZE_SCHEMA, timezone="UTC")
    return with_horizon(pa.Table.from_pylist(rows, schema=schema), ALL)


def write_archive(target: Path) -> None:
    """Run silver and gold once in a driver that archives its classes to `target`."""
    from deltalake import write_deltalake

    from meterlake.app.pipeline import run_once
    from meterlake.core.session import build_session
    from meterlake.core.sparkinternals import stop_jvm
    from meterlake.core.tables import ensure_table

    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    target.unlink(missing_ok=True)  # not used by the driver that writes the next one
    with tempfile.TemporaryDirectory(prefix="meterlake-classes-") as scratch:
        config = load_config()
        config = replace(
            config, lake=Path(scratch),
            spark=replace(config.spark, java_options=(
                f"{config.spark.java_options} -XX:ArchiveClassesAtExit={partial} {ARCHIVE_QUIET}")),
        )
        spark = build_session(config)
        bronze = config.table_path("bronze")
        ensure_table(spark, bronze, BRONZE_SCHEMA, "raw Kafka messages")
        write_deltalake(str(bronze), _messages(config), mode="append")
        run_once(spark, config, ["silver", "gold"], echo=lambda _: None)
        stop_jvm(spark)  # the JVM writes the archive as it exits
    if not partial.exists():
        raise SystemExit(f"the JVM wrote no class archive at {partial}")
    partial.replace(target)


if __name__ == "__main__":
    write_archive(class_archive())
    print(f"wrote {class_archive()}")
