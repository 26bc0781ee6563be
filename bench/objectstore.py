"""Bench phase `objectstore` (issue 26): the month's catch-up with the lake on the local
S3 store (SeaweedFS on loopback, `meterlake.infra.objectstore`) against the same on
local disk, interleaved (local, store, local, store); summary id `objectstore_vs_local`.

Where the store's time goes: the catch-ups' progress reports, summed per query and
operation (Spark's durationMs: addBatch holds the delta-rs commits and the Delta
source's log reads, walCommit and commitOffsets the checkpoint's files through s3a,
latestOffset the Delta log listing), store minus local; the largest difference is
named as the limit. Beside it, what one delta-rs append of a small batch costs on
each (the commit bronze and silver make per micro-batch).
"""

from __future__ import annotations

import shutil
import statistics
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench import feed, timing
from meterlake.core.config import Config
from meterlake.core.location import Location, ObjectPath
from meterlake.core.net import free_port
from meterlake.core.storage import export
from meterlake.infra import objectstore as store

APPENDS = 30  # small appends timed on each side
REPS = 3  # catch-ups on each side (each about 35 s of the month here)


def with_store(config: Config, results: Path) -> Config:
    """The bench's own store (home under results/, a free port), which the bench's Spark
    session must know before it starts."""
    s3 = replace(config.s3, home=results / "s3", port=free_port())
    return replace(config, s3=s3, storage=replace(config.storage, endpoint=store.endpoint(s3)))


def append_ms(table: Location, appends: int = APPENDS) -> dict[str, float]:
    """Median and p90 ms of one delta-rs append of 1,000 rows (the first creates it)."""
    from deltalake import write_deltalake

    rows = pa.table({"sensor_id": ["S01"] * 1000, "energy_kwh": [0.01] * 1000})
    write_deltalake(str(table), rows, mode="append")
    took = []
    for _ in range(appends):
        began = time.perf_counter()
        write_deltalake(str(table), rows, mode="append")
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    return {"median_ms": round(statistics.median(took), 1),
            "p90_ms": round(took[int(len(took) * 0.9) - 1], 1)}


def operation_ms(run: dict[str, Any]) -> dict[str, int]:
    """`query operation` -> summed durationMs of a catch-up's batches with input."""
    return {f"{query} {op}": ms for query, totals in run["progress"].items()
            for op, ms in totals["ms"].items() if op != "triggerExecution"}  # the sum


def limit(local: dict[str, Any], on_store: dict[str, Any]) -> dict[str, Any]:
    """The operation the store slowed most, from the median runs of each side."""
    here, there = operation_ms(local), operation_ms(on_store)
    extra = {op: there.get(op, 0) - here.get(op, 0) for op in set(here) | set(there)}
    worst = max(extra, key=lambda op: extra[op])
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:5]
    return {"operation": worst, "extra_ms": extra[worst], "local_ms": here.get(worst, 0),
            "store_ms": there.get(worst, 0), "top": dict(top)}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def measure(bench: Any) -> dict[str, Any]:
    """The phase (bench.run.Bench.phase_objectstore)."""
    config: Config = bench.config
    path, count = feed.readings_file(bench.data, bench.plan.month)
    month = getattr(bench, "month_topic", None) or bench.topic_with("month", path)
    bench.month_topic = month
    started = time.monotonic()
    store.start(config.s3)
    export(config.storage)
    res: dict[str, Any] = {
        "input": feed.spec_label(bench.plan.month, count), "readings": count,
        "store": f"SeaweedFS on {store.endpoint(config.s3)}",
        "store_start_s": round(time.monotonic() - started, 1), "local": [], "on_store": [],
    }
    run = f"bench/{uuid.uuid4().hex[:8]}"
    try:
        for i in range(REPS):
            bench.note(f"objectstore: month on local disk {i + 1}/{REPS}")
            local = feed.with_lake(month, bench.lake(f"objectstore-local-{i}"))
            res["local"].append(timing.catch_up(bench.spark, local))
            shutil.rmtree(local.lake, ignore_errors=True)
            bench.note(f"objectstore: month on the store {i + 1}/{REPS}")
            remote = replace(month, lake=ObjectPath(config.s3.bucket, f"{run}/month-{i}"))
            res["on_store"].append(timing.catch_up(bench.spark, remote))
        bench.note("objectstore: small delta-rs appends, local and store")
        res["append_local"] = append_ms(bench.lake("objectstore-appends") / "t")
        res["append_store"] = append_ms(ObjectPath(config.s3.bucket, f"{run}/appends"))
    finally:
        store.stop(config.s3)
        shutil.rmtree(config.s3.home, ignore_errors=True)
    local_s = statistics.median(r["seconds"] for r in res["local"])
    store_s = statistics.median(r["seconds"] for r in res["on_store"])
    local_cpu = statistics.median(r["cpu_s"] for r in res["local"])
    store_cpu = statistics.median(r["cpu_s"] for r in res["on_store"])
    res.update(local_median_s=round(local_s, 2), store_median_s=round(store_s, 2),
               ratio=round(store_s / local_s, 2), local_median_cpu_s=local_cpu,
               store_median_cpu_s=store_cpu, cpu_ratio=round(store_cpu / local_cpu, 2),
               limit=limit(_median_run(res["local"]), _median_run(res["on_store"])))
    return res


def summary_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's row (same fields as bench.run.summary_rows)."""
    o = out.get("objectstore")
    if not o or "ratio" not in o:
        return []
    worst = o["limit"]
    note = (f"median of {len(o['on_store'])}; {o['readings']:,} readings; CPU "
            f"{o.get('store_median_cpu_s')} vs {o.get('local_median_cpu_s')} cpu-s; limit: "
            f"{worst['operation']} +{worst['extra_ms']:,} ms ({worst['local_ms']:,} -> "
            f"{worst['store_ms']:,} ms); a delta-rs append {o['append_store']['median_ms']} ms "
            f"on the store vs {o['append_local']['median_ms']} ms local")
    return [{"metric": "1 month catch-up, lake on the local S3 store vs local disk",
             "value": o["store_median_s"], "unit": "s", "baseline": o["local_median_s"],
             "ratio": o["ratio"], "target": None, "met": None, "note": note,
             "id": "objectstore_vs_local"}]
