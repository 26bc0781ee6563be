"""What meterlake knows of Spark's internals, in one place: what no public API offers
and a Spark upgrade may change. Everything else imports it from here.

- the JVM: started as pyspark starts it but with its stderr through a pipe
  (`launch_jvm`, `forward_jvm_stderr`, which drops JVM_NOISE in quiet mode); a
  checkpoint file read through Hadoop's file system (`read_text`); the JVM's pid; the
  records running stages have read (Spark's status store);
- the checkpoint's files (`offsets/N`, `commits/N`, `sources/0/0`, `metadata`): a
  version line `v1`, then JSON lines; the Kafka source's offsets and the Delta
  source's (`reservoirVersion`, `index`) in them;
- the text of a failed query's error: Spark's error classes, the Kafka source's data
  loss, a log file Spark cannot read, an error raised inside foreachBatch.

Delta's log is read through delta-rs (the `deltalake` package), never by hand.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the JVM

# Lines the JVM prints on stderr by itself, outside log4j, that need nothing from the
# user. Spark's launcher always starts the JVM with --add-modules=jdk.incubator.vector
# (org.apache.spark.launcher.JavaModuleOptions), and the JVM then warns at start;
# no JVM option turns that warning off.
# The AWS SDK bundle (s3a, .jars/s3) shades an slf4j 1.x without a binding, which says
# so on stderr the first time the SDK logs; the SDK's own logs then go nowhere.
JVM_NOISE = (
    "WARNING: Using incubator modules: ",
    'SLF4J: Failed to load class "org.slf4j.impl.StaticLoggerBinder"',
    "SLF4J: Defaulting to no-operation (NOP) logger implementation",
    "SLF4J: See http://www.slf4j.org/codes.html#StaticLoggerBinder",
)


def is_jvm_noise(line: str) -> bool:
    """True for a line of the JVM's stderr that quiet mode drops (JVM_NOISE)."""
    return line.startswith(JVM_NOISE)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def forward_jvm_stderr(pipe: IO[bytes], quiet: bool, fd: int = 2) -> None:
    """Copy the JVM's stderr to `fd` line by line until it closes, without the JVM_NOISE
    lines when `quiet`. Keeps reading when `fd` is gone, so the JVM never blocks."""
    writable = True
    for raw in iter(pipe.readline, b""):
        if not writable or (quiet and is_jvm_noise(raw.decode("utf-8", "replace"))):
            continue
        try:
            _write_all(fd, raw)
        except OSError:  # stderr closed (e.g. a pipe whose reader left)
            writable = False


def launch_jvm(settings: dict[str, str], quiet: bool) -> None:
    """Start Spark's JVM as pyspark would, its stderr through forward_jvm_stderr; no-op
    once a JVM runs in this process."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    conf = SparkConf()
    for key, value in settings.items():
        conf.set(key, value)
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(
        target=forward_jvm_stderr, args=(gateway.proc.stderr, quiet),
        name="meterlake-jvm-stderr", daemon=True,
    ).start()
    SparkContext._ensure_initialized(gateway=gateway)


def stop_jvm(spark: SparkSession, timeout: float = 300) -> None:
    """Stop the session and wait for its JVM to exit (pyspark's JVM exits when its
    stdin closes; a JVM with -XX:ArchiveClassesAtExit writes its archive then)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout)


def read_text(spark: SparkSession, path: str) -> str:
    """A checkpoint file through Hadoop's file system (works for any checkpoint location)."""
    context = spark.sparkContext
    jvm = context._jvm
    if jvm is None:  # pyspark sets it when its JVM starts, before any SparkSession
        raise MeterlakeError(f"cannot read {path}: Spark's JVM is not running")
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(context._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        raise FileNotFoundError(path)
    stream = fs.open(hpath)
    try:
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def jvm_pid(spark: SparkSession) -> int:
    """The process id of the session's JVM (the driver)."""
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]


def running_stage_records(spark: SparkSession) -> dict[str, int]:
    """Per scheduler pool, the most records one running stage has read (input or
    shuffle), from Spark's status store ({} when unreadable)."""
    most: dict[str, int] = {}
    try:
        stages = spark.sparkContext._jsc.sc().statusStore().activeStages()
        for stage in (stages.apply(i) for i in range(stages.size())):
            pool = str(stage.schedulingPool())
            most[pool] = max(most.get(pool, 0), stage.inputRecords(), stage.shuffleReadRecords())
    except Exception as exc:
        log.debug("no stage metrics: %s", exc)
    return most


# --------------------------------------------------------------------------- checkpoint files


def batch_numbers(folder: Path) -> list[int]:
    """The batch ids of a checkpoint's log folder (`offsets`, `commits`), in order."""
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def log_lines(text: str) -> list[str]:
    """A checkpoint log file's lines: the version line, then its JSON lines."""
    return [line for line in text.lstrip("\x00").split("\n") if line]


def batch_source_offset(text: str) -> str | None:
    """The source offset (JSON text) an `offsets/N` file of a one-source query records:
    its last line, after the version and the metadata lines; None if it has none."""
    lines = log_lines(text)
    return lines[-1] if len(lines) > 2 else None


def _json_line(line: str, what: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        raise ValueError(f"has {what} that is not JSON") from None


def check_log_file(path: Path, kind: str) -> None:
    """ValueError saying what is wrong unless the file has Spark's log format: a version
    line `v<N>`, then JSON lines (kind "offsets": then one line per source, or `-`)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    lines = text.lstrip("\x00").split("\n")
    if not lines[0].startswith("v") or not lines[0][1:].isdigit():
        raise ValueError("has no version line (v1)")
    body = [line for line in lines[1:] if line]
    if not body:
        raise ValueError("is incomplete (nothing after the version line)")
    if not isinstance(_json_line(body[0], "a metadata line"), dict):
        raise ValueError("has a metadata line that is not a JSON object")
    if kind == "offsets":
        if len(body) < 2:
            raise ValueError("holds no source offsets")
        for line in body[1:]:
            if line != "-":
                _json_line(line, "a source offsets line")


def metadata_query_id(text: str) -> str | None:
    """The query id a checkpoint's `metadata` file records (its first line, a JSON
    object); None if it records none, ValueError or IndexError if it is no JSON."""
    data = json.loads(text.splitlines()[0])
    return str(data["id"]) if isinstance(data, dict) and "id" in data else None


def checkpoint_query_id(spark: SparkSession, checkpoint: Location) -> str:
    """The id Spark wrote into a checkpoint's metadata file.

    A fresh checkpoint gets a fresh id, so idempotent Delta writes keyed on it
    (meterlake.core.commits) never skip the writes of a new query."""
    path = str(checkpoint / "metadata")
    found = metadata_query_id(read_text(spark, path))
    if found is None:
        raise MeterlakeError(f"{path} records no query id")
    return found


def parse_kafka_offsets(line: str) -> dict[tuple[str, int], int]:
    """The Kafka source's offsets, `{"topic": {"0": 12, "1": 7}}` -> {(topic, partition):
    offset}."""
    data = json.loads(line)
    return {
        (topic, int(partition)): int(offset)
        for topic, partitions in data.items()
        for partition, offset in partitions.items()
    }


def planned_offsets(
    spark: SparkSession, checkpoint: str, batch_id: int
) -> dict[tuple[str, int], tuple[int, int]]:
    """Kafka offsets micro-batch `batch_id` of a one-source query was planned to read:
    {(topic, partition): (first, end)}, end exclusive.

    The end is `offsets/<batch_id>`; the start is the previous batch's end, or for
    batch 0 the initial offsets the Kafka source recorded in `sources/0/0`."""
    end = parse_kafka_offsets(log_lines(read_text(spark, f"{checkpoint}/offsets/{batch_id}"))[-1])
    if batch_id > 0:
        previous = f"{checkpoint}/offsets/{batch_id - 1}"
    else:
        previous = f"{checkpoint}/sources/0/0"
    try:
        start = parse_kafka_offsets(log_lines(read_text(spark, previous))[-1])
    except FileNotFoundError:
        start = {}
    return {tp: (start.get(tp, 0), until) for tp, until in end.items()}


def delta_first_unread(offset: str) -> int:
    """The first Delta version a checkpointed Delta source has not read in full.

    `{"reservoirVersion": 3, "index": -1, ...}` means versions up to 2 are read and
    3 is next; an index of 0 or more, that the batch stopped inside version 3
    (its remaining files are not counted: the total is then a little low)."""
    data = json.loads(offset)
    version = int(data["reservoirVersion"])
    return version if int(data.get("index", -1)) < 0 else version + 1


# --------------------------------------------------------------------------- error text

_STREAM_FAILED = re.compile(r"^\[STREAM_FAILED\] Query \[id = [^\]]*\] terminated with exception: ")
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+")
_DATA_LOSS = re.compile(r"some data may have been lost|KAFKA_DATA_LOSS", re.IGNORECASE)
_LOST_RANGE = re.compile(
    r"Could not read records in offset \[(\d+), (\d+)\) for topic partition (\S+)"
)
_LOST_OFFSET = re.compile(
    r"Cannot fetch (?:record for )?offset (\d+)\s*\(.*?TopicPartition: (\S+?)\)"
)
_DAMAGED_LOG = re.compile(
    r"Failed to read log file (\S+?)\.? |MALFORMED_LOG_FILE|Incomplete log file"
    r"|Expected e\.g\. \{\"topicA\"|UnsupportedLogVersion|INVALID_LOG_VERSION"
)
# A failure inside foreachBatch is wrapped in FOREACH_BATCH_USER_FUNCTION_ERROR and
# STREAM_FAILED; the first other error class in the text says what went wrong.
_USER_FUNCTION_CAUSE = re.compile(
    r"\[(?!FOREACH_BATCH_USER_FUNCTION_ERROR\]|STREAM_FAILED\])[A-Z][A-Z0-9_.]*\][^\n]*"
)
_RAISED_HERE = re.compile(r"meterlake\.core\.errors\.MeterlakeError: (.*)")


def raised_inside(text: str) -> str | None:
    """The message of a MeterlakeError raised inside the query (in foreachBatch)."""
    found = _RAISED_HERE.search(text)
    return found.group(1).strip() if found else None


def lost_offsets(text: str) -> str | None:
    """None unless the Kafka source lost data; then where, as far as the text says
    (" (of offsets 5..9 of energy-0)", " (offset 5 of energy-0)", or "")."""
    if not _DATA_LOSS.search(text):
        return None
    if found := _LOST_RANGE.search(text):
        first, end, partition = found.groups()
        return f" (of offsets {first}..{int(end) - 1} of {partition})"
    if found := _LOST_OFFSET.search(text):
        return f" (offset {found.group(1)} of {found.group(2)})"
    return ""


def is_damaged_log(text: str) -> bool:
    """True when Spark could not read a checkpoint's log file."""
    return _DAMAGED_LOG.search(text) is not None


def cause_in_batch(text: str) -> str | None:
    """For a failure inside foreachBatch, the first error class inside and its message."""
    if "FOREACH_BATCH_USER_FUNCTION_ERROR" not in text:
        return None
    found = _USER_FUNCTION_CAUSE.search(text)
    return _SQLSTATE.sub("", found.group(0)).strip() if found else None


def first_line(text: str) -> str:
    """The error's first line, without the STREAM_FAILED wrapper and the SQLSTATE."""
    lines = text.splitlines()
    return _SQLSTATE.sub("", _STREAM_FAILED.sub("", lines[0] if lines else "")).strip()
