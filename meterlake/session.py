"""The one SparkSession factory: Delta, the Kafka source, RocksDB state, quiet logs.

Jars come from the project-local folder that `make setup` fills with Maven
(.jars/spark), never from Ivy at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.config import PROJECT_ROOT, Config
from meterlake.errors import MeterlakeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG4J2 = PROJECT_ROOT / "conf" / "log4j2.properties"
JARS_DIR = Path(os.environ.get("METERLAKE_JARS", PROJECT_ROOT / ".jars"))


def spark_jars() -> list[str]:
    jars = sorted((JARS_DIR / "spark").glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise MeterlakeError(f"Spark jars missing in {JARS_DIR / 'spark'}: run `make setup`")
    return [str(j) for j in jars]


def spark_settings(config: Config) -> dict[str, str]:
    """Everything the session needs, as plain settings (testable without a JVM)."""
    s = config.spark
    settings = {
        "spark.master": s.master,
        "spark.app.name": s.app_name,
        "spark.jars": ",".join(spark_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": config.semantics.zone,
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # One memory budget for all RocksDB instances (block cache and write buffers),
        # instead of up to 128 MB of write buffers per state partition: the state is
        # each sensor's last hour of readings, kilobytes per sensor.
        "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
        "spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB": "64",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "true" if s.ui else "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": s.driver_memory,
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta 4.4 re-lists every file after each commit (a Spark job) when the
        # session time zone is not UTC; the incremental checksum is enough.
        "spark.databricks.delta.allFilesInCrc.verificationMode.enabled": "false",
        # Rebuilding a table's state from its log: 50 partitions by default,
        # far too many tasks for small logs on a few cores.
        "spark.databricks.delta.snapshotPartitions": str(s.shuffle_partitions),
        "spark.databricks.delta.allFilesInCrc.verificationMode.forceOnNonUTC.enabled": "false",
        # Live mode runs three streams in one application: each gets its own pool
        # (meterlake.pipeline), so a query's jobs do not queue behind another's.
        "spark.scheduler.mode": "FAIR",
    }
    if s.ui:
        settings["spark.ui.host"] = "127.0.0.1"
    settings.update(s.conf)
    return settings


def build_session(config: Config) -> SparkSession:
    """Create (or return the running) SparkSession configured for meterlake."""
    # Spark's Python workers must run this interpreter (the venv), not python3 from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # pandas warns about pyspark's own concat on every batch; not actionable here.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS",
        f"--driver-java-options -Dlog4j2.configurationFile={LOG4J2} pyspark-shell",
    )
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_settings(config).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
