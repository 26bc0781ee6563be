"""Exposure and secrets (issue 7, item 9).

- By default nothing listens beyond loopback: every listening TCP socket of
  the Spark driver's JVM, of this Python process (py4j's callback server) and
  of the Kafka broker (both listeners) is bound to 127.0.0.1; the Spark UI is
  off, and when turned on it also binds to loopback.
- Kafka client security settings (SASL_SSL, SSL) go from `[kafka.client]` and
  METERLAKE_KAFKA_SASL_JAAS_CONFIG to the publisher's producer and to Spark's
  Kafka source, unchanged.
- The JAAS secret appears nowhere: not in the command's output (with -v and
  Spark/Kafka logging at INFO), not in any file of the lake (Delta logs,
  checkpoints), not in the streaming query's plan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from bronze.job import kafka_options, read_kafka
from meterlake.core.config import PROJECT_ROOT, load_config
from meterlake.core.kafkaclient import client_settings
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import producer_settings
from tests.reliability_helpers import cli, is_loopback, listening, meterlake_env, write_conf

SECRET = "S3cr3t-Pa55w0rd-7f3a"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="meter" password="{SECRET}";'
)


def _ss_listeners(pid: int) -> list[str]:
    """The same, as `ss -ltnp` reports it (when ss is installed)."""
    result = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=False)
    return [line.split()[3] for line in result.stdout.splitlines() if f"pid={pid}," in line]


def test_nothing_listens_beyond_loopback_and_the_ui_is_off(spark, kafka, base_config):
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    broker_pid = int((base_config.broker.home / "broker.pid").read_text())
    seen = {}
    for name, pid in (("spark driver JVM", jvm_pid), ("python (py4j)", os.getpid()),
                      ("kafka broker", broker_pid)):
        seen[name] = listening(pid)
        exposed = [a for a in seen[name] if not is_loopback(a)]
        assert exposed == [], f"{name} listens on {exposed}"
        if os.path.exists("/usr/bin/ss") or os.path.exists("/bin/ss"):
            assert all(a.startswith(("127.", "[::ffff:127.", "[::1]")) for a in _ss_listeners(pid))
    broker = base_config.broker
    assert f"127.0.0.1:{broker.port}" in seen["kafka broker"]
    assert f"127.0.0.1:{broker.controller_port}" in seen["kafka broker"]
    assert len(seen["spark driver JVM"]) >= 2  # RPC and block manager at least, on loopback
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert spark.sparkContext.uiWebUrl is None


UI_PROBE = """
import sys, time
from dataclasses import replace
from meterlake.core.config import load_config
from meterlake.core.session import build_session
config = load_config()
spark = build_session(replace(config, spark=replace(config.spark, ui=True)))
print(spark.sparkContext.uiWebUrl, flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.spark  # a Spark session in a subprocess
def test_the_spark_ui_when_turned_on_listens_on_loopback_only():
    env = meterlake_env()
    env.pop("SPARK_LOCAL_IP", None)  # what build_session sets by itself
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    probe = subprocess.Popen(
        [sys.executable, "-c", UI_PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env, cwd=PROJECT_ROOT, start_new_session=True,
    )
    try:
        url = probe.stdout.readline().strip()
        assert url.startswith("http://"), url
        port = int(url.rsplit(":", 1)[1])
        jvm = subprocess.run(["pgrep", "-P", str(probe.pid)], capture_output=True, text=True)
        pids = [int(p) for p in jvm.stdout.split()]
        addresses = [a for pid in pids for a in listening(pid)]
        ui = [a for a in addresses if a.endswith(f":{port}")]
        assert ui, addresses
        assert all(is_loopback(a) for a in addresses), addresses
    finally:
        os.killpg(probe.pid, 9)
        probe.wait()


def test_kafka_security_settings_reach_the_producer_and_spark_unchanged(monkeypatch, tmp_path):
    from kafka import KafkaProducer

    conf = tmp_path / "meterlake.toml"
    conf.write_text(
        '[kafka]\nbootstrap = "broker1:9093,broker2:9093"\n[kafka.client]\n'
        '"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "SCRAM-SHA-512"\n'
        '"ssl.ca.location" = "/etc/meterlake/ca.pem"\n'
        '"ssl.truststore.location" = "/etc/meterlake/truststore.jks"\n'
        '"ssl.endpoint.identification.algorithm" = "https"\n'
    )
    monkeypatch.setenv("METERLAKE_KAFKA_SASL_JAAS_CONFIG", JAAS)
    config = load_config(conf)
    assert config.kafka.client["sasl.jaas.config"] == JAAS  # from the environment

    spark_options = kafka_options(config)
    assert spark_options["kafka.bootstrap.servers"] == "broker1:9093,broker2:9093"
    assert spark_options["kafka.security.protocol"] == "SASL_SSL"
    assert spark_options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert spark_options["kafka.sasl.jaas.config"] == JAAS
    assert spark_options["kafka.ssl.truststore.location"] == "/etc/meterlake/truststore.jks"
    assert spark_options["kafka.ssl.endpoint.identification.algorithm"] == "https"

    producer = producer_settings(config.kafka, 0, KafkaProducer.DEFAULT_CONFIG)
    assert producer["bootstrap_servers"] == ["broker1:9093", "broker2:9093"]
    assert producer["security_protocol"] == "SASL_SSL"
    assert producer["sasl_mechanism"] == "SCRAM-SHA-512"
    assert producer["sasl_plain_username"] == "meter"
    assert producer["sasl_plain_password"] == SECRET
    assert producer["ssl_cafile"] == "/etc/meterlake/ca.pem"
    assert producer["ssl_check_hostname"] is True
    assert producer["acks"] == "all" and producer["enable_idempotence"] is True
    assert client_settings({"security.protocol": "SSL"}, KafkaProducer.DEFAULT_CONFIG) == {
        "security_protocol": "SSL"
    }


def test_the_streaming_plan_does_not_show_the_jaas_secret(spark, config):
    client = {**config.kafka.client, "sasl.jaas.config": JAAS}
    secret_config = replace(config, kafka=replace(config.kafka, client=client))
    messages = read_kafka(spark, secret_config)
    plans = messages._jdf.queryExecution().toString()
    assert "kafka" in plans.lower()
    assert SECRET not in plans


INFO_LOG4J = """\
rootLogger.level = info
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
# Named loggers keep INFO when pyspark (and build_session) set the root to WARN.
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = info
logger.spark.name = org.apache.spark
logger.spark.level = info
logger.kafka.name = org.apache.kafka
logger.kafka.level = info
logger.delta.name = io.delta
logger.delta.level = info
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = info
"""


@pytest.mark.slow
def test_the_jaas_secret_is_in_no_log_no_table_and_no_checkpoint(kafka, config, tmp_path):
    """A real run with the secret in the environment (the local broker is PLAINTEXT,
    so it is carried but not used): publish and run with -v, and Spark's and Kafka's
    logging at INFO."""
    readings = tmp_path / "day.csv"
    write_readings(MonthSpec(meters=2, days=1, cadence_s=900, seed=2), readings)
    log4j = tmp_path / "log4j2-info.properties"
    log4j.write_text(INFO_LOG4J)
    conf = write_conf(tmp_path / "meterlake.toml", config)
    env = {
        "METERLAKE_KAFKA_SASL_JAAS_CONFIG": JAAS,
        "PYSPARK_SUBMIT_ARGS": (
            f"--driver-java-options -Dlog4j2.configurationFile={log4j} pyspark-shell"
        ),
    }
    started = time.monotonic()
    published = cli(["-v", "publish", "--filename", str(readings), "--speedup", "0"], conf, env)
    ran = cli(["-v", "run", "--once"], conf, env)
    assert published.returncode == 0, published.stderr[-2000:]
    assert ran.returncode == 0, ran.stderr[-3000:]
    output = published.stdout + published.stderr + ran.stdout + ran.stderr
    assert " INFO SparkContext: " in ran.stderr  # Spark's INFO logging was on
    assert "sasl.jaas.config = [hidden]" in output  # Kafka logs its client config, redacted
    assert SECRET not in output
    leaks = [p for p in config.lake.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert (config.lake / "gold" / "day_cost" / "_delta_log").is_dir()
    assert time.monotonic() - started < 600
