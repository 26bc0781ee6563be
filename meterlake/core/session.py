"""The one SparkSession factory: Delta, the Kafka source, RocksDB state, quiet logs.

Jars come from the project-local folder that `make setup` fills with Maven
(.jars/spark), never from Ivy at run time.

Quiet by default: Spark logs through conf/log4j2.properties (warnings that ask
nothing of the user are off), and the JVM's own stderr passes through
`meterlake.core.sparkinternals.forward_jvm_stderr`, which drops the lines no log
level reaches (JVM_NOISE there). With `[spark] verbose = true` (what `meterlake -v` sets) Spark logs
through conf/log4j2-verbose.properties, every warning as Spark prints it, and
nothing is dropped. A PYSPARK_SUBMIT_ARGS of your own (e.g. naming your own
log4j2 file) always wins. `[spark] java_options` go to the driver JVM
(by default C1 only: see meterlake.core.config.SparkConf).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.core import storage
from meterlake.core.config import CONF_DIR, PROJECT_ROOT, Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import on_object_store
from meterlake.core.sparkinternals import launch_jvm

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The JVM says nothing of its class archive, used or not (a stale one is not used).
ARCHIVE_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
LOG4J2 = CONF_DIR / "log4j2.properties"
LOG4J2_VERBOSE = CONF_DIR / "log4j2-verbose.properties"


# Hadoop's local file system (the lake and checkpoints on local disk) from
# meterlake/jvm: without Hadoop's native library it runs `chmod` for every file it
# creates and `readlink` for every rename, about 130 processes per micro-batch of a
# plain Delta stream; a micro-batch of it took 370 -> 305 ms on 2 cores.
LOCAL_FS = {
    "spark.hadoop.fs.file.impl": "meterlake.hadoop.NioLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "meterlake.hadoop.NioLocalFs",
}


def jars_dir() -> Path:
    """Where `make setup` put the JVM's jars (spark/, kafka/): $METERLAKE_JARS, else .jars
    in the source checkout. An install location, like JAVA_HOME, read when needed: not a
    setting of a run, so not in the conf file nor under its precedence."""
    return Path(os.environ.get("METERLAKE_JARS") or PROJECT_ROOT / ".jars")


def class_archive() -> Path:
    """The driver JVM's class archive (meterlake.app.classarchive, by `make setup`)."""
    return jars_dir() / "spark-driver.jsa"


def local_fs_jar() -> str:
    """meterlake/jvm compiled by `make setup`: Hadoop's local file system without a
    process per call (LOCAL_FS), for the driver's and executors' class path (Spark's
    submission reads the local file system before spark.jars are loaded; a standalone
    cluster's hosts need the jar at the same path)."""
    jar = jars_dir() / "meterlake" / "meterlake-localfs.jar"
    if not jar.exists():
        raise MeterlakeError(f"{jar} missing: run `make setup` "
                             "(or set METERLAKE_JARS to the folder it filled)")
    return str(jar)


def spark_jars() -> list[str]:
    folder = jars_dir() / "spark"
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise MeterlakeError(f"Spark jars missing in {folder}: run `make setup` "
                             "(or set METERLAKE_JARS to the folder it filled)")
    return [str(j) for j in jars]


def s3_classpath(config: Config) -> str | None:
    """Hadoop's s3a (hadoop-aws and the AWS SDK bundle, .jars/s3) for the driver's and
    executors' class path: there, not on spark.jars, so no copy of the 686 MB bundle is
    fetched by each executor (a standalone cluster's hosts need the folder at the same
    path). None when `make setup` did not install them; an error when the lake is on an
    object store then."""
    folder = jars_dir() / "s3"
    if any(folder.glob("hadoop-aws-*.jar")):
        return str(folder / "*")
    if on_object_store(config.lake):
        raise MeterlakeError(f"the s3a jars are missing in {folder}: run `make setup` "
                             "(a lake on an object store needs them)")
    return None


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
        # (meterlake.app.pipeline), so a query's jobs do not queue behind another's.
        "spark.scheduler.mode": "FAIR",
        # Spark splits files for its tasks into pieces of at least this size (the
        # default, 4 MB, keeps a micro-batch's bronze file of 2 MB in one task): with
        # 128 KB the file is split evenly over the cores between its row groups
        # (meterlake.core.commits.ROW_GROUP_ROWS). The month's silver: the reading
        # side of its batches 5.4 -> 3.3 s.
        "spark.sql.files.openCostInBytes": str(128 << 10),
        **LOCAL_FS,
    }
    if s.ui:
        settings["spark.ui.host"] = "127.0.0.1"
    classpath = [local_fs_jar()]
    s3 = s3_classpath(config)
    if s3:  # any lake on s3a://, whatever this session's own lake (tests switch lakes)
        classpath.append(s3)
        settings.update(storage.spark_settings(config.storage))
    settings["spark.driver.extraClassPath"] = settings["spark.executor.extraClassPath"] = (
        os.pathsep.join(classpath))
    settings.update(s.conf)
    return settings


def submit_args(config: Config, log4j: Path) -> str:
    """spark-submit's arguments for the driver JVM (pyspark splits them like a shell):
    the log4j2 file, `[spark] java_options` and the class archive where there is one
    (unless the options write one)."""
    java = shlex.split(config.spark.java_options)
    archive = class_archive()
    if archive.exists() and not any(o.startswith("-XX:ArchiveClassesAtExit") for o in java):
        java += [f"-XX:SharedArchiveFile={archive}", *shlex.split(ARCHIVE_QUIET)]
    options = shlex.join([f"-Dlog4j2.configurationFile={log4j}", *java])
    return f"--driver-java-options {shlex.quote(options)} pyspark-shell"


def build_session(config: Config) -> SparkSession:
    """Create (or return the running) SparkSession configured for meterlake."""
    quiet = not config.spark.verbose
    # Spark's Python workers must run this interpreter (the venv), not python3 from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if quiet:
        # The Python workers' warnings (pandas about pyspark's own concat on every
        # batch, ...) ask nothing of the user. Only the workers see this variable.
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    log4j = LOG4J2 if quiet else LOG4J2_VERBOSE
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", submit_args(config, log4j))
    from pyspark.sql import SparkSession

    settings = spark_settings(config)
    launch_jvm(settings, quiet)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
