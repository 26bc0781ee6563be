"""Metric 8 on a loopback cluster: catch-up on a Spark standalone cluster (a master and
two one-core workers, `meterlake.infra.sparkcluster`) reading a three-node KRaft cluster
(`meterlake.infra.broker.start_cluster`) with six partitions replicated three times.

The bench's own SparkSession (local[2]) fills the topics (`feed.bulk_publish`); the
pipeline runs in a driver subprocess (`python -m bench.cluster`, one SparkContext per
process) whose master is the cluster. That driver builds its session and warms up on
a small span first (JVM, executors, jar shipping and Python workers excluded, as in
the rest of the bench), then times `run_once` per point with `Bench.catch_up`. CPU
seconds are the driver's (JVM and Python) plus the cluster's (daemons, executors and
their Python workers).

    python -m bench.cluster --job JOB.json   (what the bench runs; prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import env, feed, timing
from meterlake.core.config import PROJECT_ROOT, Config, load_config
from meterlake.core.net import children, free_port
from meterlake.infra import broker, sparkcluster

NODES = 3
PARTITIONS = 6
REPLICATION = 3
WORKERS = 2
WARM_UP = (11, 1.0)  # meters, hours


def cluster_catch_ups(bench: Any, points: tuple[tuple[int, float], ...]) -> dict[str, Any]:
    """Start both clusters under <results>/cluster, publish each point's span, run the
    driver subprocess over all of them, stop everything; the figures."""
    home = bench.results / "cluster"
    shutil.rmtree(home, ignore_errors=True)
    kafka = broker.ClusterConf(
        home=home / "kafka", ports=tuple(free_port() for _ in range(NODES)),
        controller_ports=tuple(free_port() for _ in range(NODES)), heap="256m",
    )
    spark = sparkcluster.SparkClusterConf.on_free_ports(home / "spark", workers=WORKERS)
    res: dict[str, Any] = {
        "setup": f"Spark standalone: master + {WORKERS} workers x {spark.worker_cores} core, "
                 f"{spark.worker_memory}; Kafka: {NODES} KRaft nodes, {PARTITIONS} partitions "
                 f"x {REPLICATION} replicas",
    }
    try:
        t = time.monotonic()
        broker.start_cluster(kafka)
        res["kafka_start_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        with sparkcluster.running(spark):
            res["spark_cluster_start_s"] = round(time.monotonic() - t, 1)
            jobs = []
            for name, (meters, hours) in [("warm-up", WARM_UP), *[("point", p) for p in points]]:
                path, count = feed.span_file(bench.data, meters, hours)
                config = feed.with_topic(
                    replace(bench.config, kafka=replace(bench.config.kafka,
                                                        bootstrap=kafka.bootstrap)),
                    feed.fresh_topic("cluster"))
                broker.create_topic(config.kafka.bootstrap, config.kafka.topic, PARTITIONS,
                                    REPLICATION)
                bench.note(f"scale on the cluster: {meters} meters x {hours:g} h = "
                           f"{count:,} readings: publishing")
                feed.bulk_publish(bench.spark, config, path)
                jobs.append({"name": name, "meters": meters, "hours": hours, "readings": count,
                             "topic": config.kafka.topic,
                             "lake": str(bench.results / "lakes" / f"cluster-{meters}-{hours:g}")})
            bench.note(f"scale on the cluster: driver on {spark.url}, catch-ups")
            done = _drive(home, kafka, spark, jobs)
        res["driver_jvm_start_s"] = done["jvm_start_s"]
        res["warm_up"] = done["points"][0]
        res["points"] = done["points"][1:]
    finally:
        broker.stop_cluster(kafka)
        shutil.rmtree(home, ignore_errors=True)
    return res


def _drive(home: Path, kafka: broker.ClusterConf, spark: sparkcluster.SparkClusterConf,
           jobs: list[dict[str, Any]]) -> dict[str, Any]:
    job = home / "job.json"
    job.write_text(json.dumps({
        "bootstrap": kafka.bootstrap, "master": spark.url, "spark_home": str(spark.home),
        "workers": WORKERS, "executor": spark.executor_settings("768m"), "jobs": jobs,
    }))
    out = home / "driver.out"
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("METERLAKE_")}
    with open(out, "wb") as log:
        result = subprocess.run(
            [sys.executable, "-m", "bench.cluster", "--job", str(job)], stdout=subprocess.PIPE,
            stderr=log, env={**env_vars, "PYTHONPATH": str(PROJECT_ROOT)}, cwd=PROJECT_ROOT,
            check=False, timeout=3600,
        )
    if result.returncode != 0:
        tail = out.read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError("cluster driver failed:\n" + "\n".join(tail))
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def _cluster_ticks(spark: sparkcluster.SparkClusterConf) -> dict[int, int]:
    pids = {p for d in sparkcluster.pids(spark) for p in [d, *children(d)]}
    ticks = {pid: env.cpu_ticks(pid) for pid in pids}
    return {pid: t for pid, t in ticks.items() if t is not None}


def drive(job: dict[str, Any]) -> dict[str, Any]:
    """In the driver subprocess: a session on the cluster, then each job's catch-up."""
    from meterlake.core.session import build_session

    base = feed.bench_config(load_config(), Path(job["jobs"][0]["lake"]).parent)
    config: Config = replace(
        base,
        kafka=replace(base.kafka, bootstrap=job["bootstrap"], partitions=PARTITIONS),
        spark=replace(base.spark, master=job["master"], driver_memory="1g",
                      conf={**base.spark.conf, **job["executor"]}),
    )
    spark_conf = sparkcluster.SparkClusterConf(
        home=Path(job["spark_home"]), master_port=0, master_ui_port=0,
        worker_ports=(0,) * job["workers"], worker_ui_ports=(0,) * job["workers"])
    t = time.monotonic()
    session = build_session(config)
    session.sparkContext.setLogLevel("ERROR")
    jvm_start = round(time.monotonic() - t, 1)
    points = []
    for item in job["jobs"]:
        lake = Path(item.pop("lake"))
        shutil.rmtree(lake, ignore_errors=True)
        point_config = feed.with_lake(feed.with_topic(config, item["topic"]), lake)
        before = _cluster_ticks(spark_conf)
        point = {**item, **timing.catch_up(session, point_config)}
        point["cluster_cpu_s"] = round(env.cpu_seconds_between(
            before, _cluster_ticks(spark_conf)), 1)
        point["readings_per_s"] = round(point["readings"] / point["seconds"], 1)
        point["state_mb"] = env.dir_size_mb(point_config.checkpoint("silver") / "state")
        points.append(point)
        feed.delete_topic(point_config)
        shutil.rmtree(lake, ignore_errors=True)
    session.stop()
    return {"jvm_start_s": jvm_start, "points": points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", required=True, help="the JSON the bench wrote")
    args = parser.parse_args(argv)
    print(json.dumps(drive(json.loads(Path(args.job).read_text()))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
