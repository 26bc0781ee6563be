"""On a cluster (issue 7, item 10): the same pipeline, unchanged, on a Spark standalone
cluster reading a replicated Kafka cluster, all on loopback.

- Kafka: three KRaft nodes, each a broker and a voter of the controller quorum
  (`meterlake.infra.broker.start_cluster`), data in tmp_path, free ports; the topic has
  six partitions replicated three times (all in sync before publishing).
- Spark: a master and two workers of one core each (`meterlake.infra.sparkcluster`,
  pyspark's own spark-class); the driver is `python -m meterlake run --once` with
  `[spark] master = "spark://127.0.0.1:PORT"` from its config file, jars through
  spark.jars as always, the executors' Python the venv's (PYSPARK_PYTHON).
- The lake on the local S3 store (SeaweedFS, the session's): driver and executors
  share nothing but the store (tables, checkpoints, RocksDB state through s3a and
  delta-rs), as on machines that share no disk.
- A small month (3 meters x 29 days, 15-minute cadence) published with the CLI to
  the three brokers: bronze holds every offset of the six partitions once, and
  gold equals the oracle (`oracle/`). Both workers ran an executor of the
  application, which the master lists as finished.
- Nothing listens beyond loopback: every listening socket of the Kafka nodes, the
  master, the workers, the executors they start and the driver (sampled while it
  runs) is on 127.0.0.1. No JVM is left behind (checked at teardown).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import pytest

from meterlake.core.location import ObjectPath
from meterlake.core.net import children, free_port, pid_alive
from meterlake.infra import broker, sparkcluster
from meterlake.infra.broker import ClusterConf
from meterlake.infra.sparkcluster import SparkClusterConf
from meterlake.tools.generate import MonthSpec, write_readings
from oracle import compute_answers
from tests.helpers import end_offsets
from tests.reliability_helpers import (
    assert_bronze_is_one_row_per_offset,
    assert_gold_equals_oracle,
    cli,
    is_loopback,
    listening,
    live,
    write_conf,
)

PARTITIONS = 6
REPLICATION = 3


@pytest.fixture
def kafka_cluster(tmp_path):
    cluster = ClusterConf(
        home=tmp_path / "kafka",
        ports=tuple(free_port() for _ in range(3)),
        controller_ports=tuple(free_port() for _ in range(3)),
        heap="256m",
    )
    broker.start_cluster(cluster)
    try:
        yield cluster
    finally:
        pids = broker.cluster_pids(cluster)
        broker.stop_cluster(cluster)
        assert not [p for p in pids if pid_alive(p)], "a Kafka node outlived the test"


@pytest.fixture
def spark_cluster(tmp_path):
    conf = SparkClusterConf.on_free_ports(tmp_path / "spark", workers=2, worker_memory="1g")
    seen: set[int] = set()
    with sparkcluster.running(conf):
        try:
            yield conf, seen
        finally:
            seen.update(pid for d in sparkcluster.pids(conf) for pid in [d, *children(d)])
    left = [p for p in seen if pid_alive(p)]
    assert not left, f"processes of the Spark cluster outlived the test: {left}"


def _listeners(pids: set[int]) -> dict[int, list[str]]:
    found = {}
    for pid in pids:
        try:
            found[pid] = listening(pid)
        except OSError:  # gone since it was listed
            continue
    return found


@pytest.mark.slow(minutes=2.2)
@pytest.mark.spark  # its own cluster and brokers, not the session's
@pytest.mark.kafka
def test_the_pipeline_on_a_spark_cluster_over_three_brokers_equals_the_oracle(
    kafka_cluster, spark_cluster, s3_store, config, tmp_path
):
    spark_conf, seen = spark_cluster
    readings = tmp_path / "month.csv"
    write_readings(MonthSpec(meters=3, days=29, cadence_s=900, seed=11), readings)
    oracle = compute_answers(readings, config.semantics)

    config = replace(
        config,
        lake=ObjectPath(s3_store.bucket, f"tests/{tmp_path.name}/lake"),
        kafka=replace(config.kafka, bootstrap=kafka_cluster.bootstrap, partitions=PARTITIONS),
        spark=replace(config.spark, master=spark_conf.url),
    )
    layout = broker.create_topic(
        config.kafka.bootstrap, config.kafka.topic, PARTITIONS, REPLICATION)
    assert sorted(layout) == list(range(PARTITIONS))
    for leader, replicas, isr in layout.values():
        assert replicas == [1, 2, 3] and isr == [1, 2, 3] and leader in replicas
    assert len({leader for leader, _, _ in layout.values()}) > 1  # leaders spread out

    conf = write_conf(
        tmp_path / "meterlake.toml", config, spark__conf=spark_conf.executor_settings("512m"),
        storage={"endpoint": config.storage.endpoint})
    published = cli(["publish", "--filename", str(readings), "--speedup", "0"], conf)
    assert published.returncode == 0, published.stderr[-2000:]

    log = tmp_path / "run.log"
    exposed: dict[int, list[str]] = {}
    started = time.monotonic()
    with live(conf, log, args=["--once"]) as driver:
        while driver.process.poll() is None:
            cluster = {p for d in sparkcluster.pids(spark_conf) for p in [d, *children(d)]}
            seen.update(cluster)  # checked for leaks at teardown
            pids = {driver.process.pid, *children(driver.process.pid), *cluster,
                    *broker.cluster_pids(kafka_cluster)}
            for pid, addresses in _listeners(pids).items():
                if bad := [a for a in addresses if not is_loopback(a)]:
                    exposed[pid] = bad
            time.sleep(0.5)
    wall = time.monotonic() - started
    output = driver.output()
    assert driver.process.returncode == 0, output[-3000:]
    assert "gold: read" in output, output[-3000:]
    assert exposed == {}, f"listening beyond loopback: {exposed}"
    print(f"\nrun --once on {spark_conf.url}: {wall:.1f} s", file=sys.stderr)

    # it ran on the cluster: an executor of the app on each worker, the app finished
    apps = [a for a in sparkcluster.applications(spark_conf) if a["name"] == "meterlake"]
    assert len(apps) == 1 and apps[0]["state"] == "FINISHED", apps
    for worker in (1, 2):
        executors = list(spark_conf.work_dir(worker).glob(f"{apps[0]['id']}/*/stderr"))
        assert executors, f"no executor of {apps[0]['id']} on worker {worker}"

    ends = end_offsets(config.kafka.bootstrap, config.kafka.topic)
    assert sorted(ends) == list(range(PARTITIONS))
    assert assert_bronze_is_one_row_per_offset(config, ends) == sum(ends.values())
    assert sum(ends.values()) == len(readings.read_text().splitlines())
    assert_gold_equals_oracle(config, oracle)
