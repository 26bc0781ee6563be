"""The stack itself: the local broker, Spark with Delta and Kafka, DuckDB over Delta."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
from kafka import KafkaConsumer

from bronze.job import start_bronze
from meterlake.app.cli import main
from meterlake.core.config import PROJECT_ROOT
from meterlake.core.net import free_port
from meterlake.core.session import class_archive, spark_settings, submit_args
from meterlake.core.sparkinternals import jvm_pid
from meterlake.core.streams import Run
from meterlake.infra import broker
from meterlake.read.connection import connect
from meterlake.read.history import history
from meterlake.read.sandbox import read_only_sql
from tests.helpers import produce


@pytest.mark.kafka  # its own broker
def test_broker_start_is_idempotent_and_stop_frees_the_ports(base_config, tmp_path) -> None:
    conf = replace(
        base_config.broker, home=tmp_path / "kafka", port=free_port(), controller_port=free_port()
    )
    first = broker.start(conf)
    try:
        second = broker.start(conf)
        assert first.pid == second.pid and second.listening
        assert "running" in broker.status(conf).describe()
    finally:
        assert broker.stop(conf)
    with socket.socket() as sock:
        sock.bind((conf.host, conf.port))  # free again
    assert broker.status(conf).pid is None
    assert broker.stop(conf) is False


def test_broker_start_on_a_taken_port_is_one_clear_error(base_config, tmp_path, capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        conf = replace(base_config.broker, home=tmp_path / "kafka", port=port)
        with pytest.raises(Exception, match=f"port 127.0.0.1:{port} is taken"):
            broker.start(conf)


def test_cli_prints_one_line_for_an_expected_failure(capsys) -> None:
    assert main(["--conf", "/nonexistent.toml", "kafka", "status"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "meterlake: error: config file not found: /nonexistent.toml"


def test_leaving_keeps_the_exit_code_the_output_and_the_atexit_handlers() -> None:
    """meterlake.app.cli.leave: out without the interpreter's teardown, nothing lost."""
    script = (
        "import atexit\n"
        "from meterlake.app.cli import leave\n"
        "atexit.register(print, 'atexit ran')\n"
        "print('work done')\n"
        "leave(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "work done\natexit ran\n", "")


def test_spark_settings_use_local_jars_and_loopback(base_config) -> None:
    settings = spark_settings(base_config)
    jars = settings["spark.jars"].split(",")
    assert any("delta-spark_4.2_2.13" in j for j in jars)
    assert any("spark-sql-kafka-0-10_2.13" in j for j in jars)
    assert "spark.jars.packages" not in settings  # nothing resolved through Ivy at run time
    assert settings["spark.ui.enabled"] == "false"
    assert settings["spark.driver.bindAddress"] == "127.0.0.1"
    assert settings["spark.sql.session.timeZone"] == "Europe/Lisbon"
    assert "RocksDB" in settings["spark.sql.streaming.stateStore.providerClass"]


def _driver_options(config, java_options: str, log4j) -> list[str]:
    spark = replace(config.spark, java_options=java_options)
    args = submit_args(replace(config, spark=spark), log4j)
    flag, options, shell = shlex.split(args)  # as pyspark splits PYSPARK_SUBMIT_ARGS
    assert (flag, shell) == ("--driver-java-options", "pyspark-shell")
    return shlex.split(options)  # as Spark's launcher splits the options


def test_the_driver_jvm_gets_the_log4j_file_and_the_java_options_as_one_argument(
    base_config, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("METERLAKE_JARS", str(tmp_path / "jars"))  # no class archive there
    log4j = tmp_path / "my logs" / "l.xml"
    assert _driver_options(base_config, "-XX:TieredStopAtLevel=1 -Dx='a b'", log4j) == [
        f"-Dlog4j2.configurationFile={tmp_path}/my logs/l.xml",
        "-XX:TieredStopAtLevel=1",
        "-Dx=a b",
    ]


def test_the_driver_jvm_maps_the_class_archive_where_setup_wrote_one(
    base_config, tmp_path, monkeypatch
) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-driver.jsa").write_bytes(b"archive")
    monkeypatch.setenv("METERLAKE_JARS", str(jars))
    options = _driver_options(base_config, "-XX:TieredStopAtLevel=1", tmp_path / "l.xml")
    assert options[1:] == [
        "-XX:TieredStopAtLevel=1", f"-XX:SharedArchiveFile={jars}/spark-driver.jsa",
        "-Xlog:cds=off", "-Xlog:cds+dynamic=off",
    ]
    writing = _driver_options(base_config, "-XX:ArchiveClassesAtExit=/tmp/a.jsa", tmp_path / "l")
    assert not any("SharedArchiveFile" in o for o in writing)  # the driver writing one


def test_the_sessions_jvm_runs_with_the_configured_java_options(spark, base_config) -> None:
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    shipped = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    assert base_config.spark.java_options == shipped
    assert set(shipped.split()) <= set(arguments)


def test_the_sessions_jvm_maps_the_class_archive_setup_wrote(spark) -> None:
    """Mapped, not only named: an archive of other jars would be ignored in silence."""
    archive = class_archive()
    assert archive.exists(), f"no {archive}: `make setup` writes it"
    info = subprocess.run(["jcmd", str(jvm_pid(spark)), "VM.info"], capture_output=True,
                          text=True, check=True, timeout=120).stdout
    assert any(line.endswith(str(archive.resolve())) for line in info.splitlines()), "not mapped"


def test_messages_round_trip_through_the_broker(kafka, config) -> None:
    sent = [(f"k{i % 3}".encode(), f"v{i}".encode()) for i in range(50)]
    produce(kafka, config.kafka.topic, sent)
    consumer = KafkaConsumer(
        config.kafka.topic,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        enable_auto_commit=False,
    )
    got = [(m.key, m.value) for m in consumer]
    consumer.close()
    assert sorted(got) == sorted(sent)


def test_spark_lands_a_topic_in_delta_and_duckdb_reads_it_and_an_older_version(
    spark, kafka, config
) -> None:
    first = [(b"a", b"one"), (b"b", b"two"), (None, b"\x00\xff binary")]
    produce(kafka, config.kafka.topic, first)
    start_bronze(spark, config, Run.ONCE).awaitTermination()
    produce(kafka, config.kafka.topic, [(b"c", b"three")])
    start_bronze(spark, config, Run.ONCE).awaitTermination()

    rows = spark.read.format("delta").load(str(config.table_path("bronze"))).collect()
    landed = sorted(((r.key and bytes(r.key), bytes(r.value), r.topic) for r in rows), key=repr)
    expected = [*first, (b"c", b"three")]
    assert landed == sorted(((k, v, config.kafka.topic) for k, v in expected), key=repr)
    assert len({(r.partition, r.offset) for r in rows}) == 4

    assert read_only_sql(config, "SELECT count(*) FROM bronze").rows == [(4,)]
    versions = sorted(row[0] for row in history(config, "bronze").rows)
    older = connect(config, version=versions[-2], tables=["bronze"])
    assert older.sql("SELECT count(*) FROM bronze").fetchall() == [(3,)]
