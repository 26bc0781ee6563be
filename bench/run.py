"""`make bench`: meterlake measured against baselines in the same run.

    python -m bench.run [--quick] [--results DIR] [--only PHASE,...]

Writes results/bench-<time>.json and .png (and bench-latest.*), copies a full
run's (all phases, not --quick) to bench/results-latest/, and prints a table:
metric, value, baseline, ratio, target, met. bench/README.md says how each
figure is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baseline, env, feed, live, objectstore, queries, steps, timing
from meterlake.core.config import PROJECT_ROOT, Config, load_config
from meterlake.tools.generate import MonthSpec

log = logging.getLogger("bench")

PHASES = ("publish", "catchup", "memory", "live", "queries", "served", "throughput", "scale",
          "fleet", "writers", "profile", "objectstore", "steps")


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; --quick shrinks everything to a few minutes."""

    quick: bool
    month: MonthSpec
    reps: int  # catch-up of the month, Spark batch, oracle, publishing
    chunks: int  # memory/state samples over the month catch-up
    fresh_s: float  # freshness: seconds of paced publishing
    warmup_s: float
    speedup: float
    drain: tuple[int, float]  # meters, hours of backlog for sustainable throughput
    drain_max_offsets: int
    scale: tuple[tuple[int, float], ...]  # (meters, hours) points of the scale law
    cluster_scale: tuple[tuple[int, float], ...]  # the same on the loopback cluster
    large: tuple[int, float]  # the scale point also timed against the baselines
    fleet: int  # meters reading every 15 minutes: a day caught up, then live at their rate
    query_reps: int
    compaction_appends: int  # small appends with inline compaction, and without

    @staticmethod
    def make(quick: bool) -> Plan:
        if quick:
            return Plan(
                quick=True, month=MonthSpec(days=5), reps=1, chunks=2, fresh_s=45,
                warmup_s=10, speedup=600, drain=(1000, 0.5), drain_max_offsets=20_000,
                scale=((11, 24), (100, 6), (1000, 1), (5000, 0.25)),
                cluster_scale=((11, 24), (100, 24)), large=(1000, 1), fleet=10_000,
                query_reps=10, compaction_appends=60,
            )
        return Plan(
            quick=False, month=MonthSpec(), reps=3, chunks=4, fresh_s=600, warmup_s=30,
            speedup=600, drain=(2000, 60), drain_max_offsets=60_000,
            scale=((11, 24), (100, 24), (1000, 24), (5000, 24)),
            cluster_scale=((11, 24), (100, 24)), large=(5000, 24), fleet=100_000,
            query_reps=30, compaction_appends=150,
        )


@dataclass
class Bench:
    plan: Plan
    results: Path
    config: Config
    spark: Any = None
    out: dict[str, Any] = field(default_factory=dict)
    json_path: Path | None = None

    @property
    def data(self) -> Path:
        return self.results / "data"

    def lake(self, name: str) -> Path:
        path = self.results / "lakes" / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def save(self) -> None:
        assert self.json_path is not None
        self.json_path.write_text(json.dumps(self.out, indent=1, default=str))

    def note(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')} load {env.load_average()[0]}] {message}",
              flush=True)

    # ---- helpers ------------------------------------------------------------------------

    def topic_with(self, prefix: str, path: Path, first: str | None = None,
                   end: str | None = None) -> Config:
        config = feed.with_topic(self.config, feed.fresh_topic(prefix))
        feed.bulk_publish(self.spark, config, path, first, end)
        return config

    def spark_batch(self, config: Config, out: Path) -> dict[str, Any]:
        load0 = env.load_average()[0]
        cpu0 = env.cpu_snapshot(self.spark)
        result = baseline.spark_batch_answers(self.spark, config, out)
        result["cpu_s"] = round(env.cpu_seconds_between(cpu0, env.cpu_snapshot(self.spark)), 1)
        result["load_1m"] = [load0, env.load_average()[0]]
        shutil.rmtree(out, ignore_errors=True)
        return result

    def gold_totals(self, config: Config) -> dict[str, float]:
        from pyspark.sql import functions as F

        frame = self.spark.read.format("delta").load(str(config.table_path("month_energy")))
        rows = frame.groupBy("sensor_id").agg(F.sum("energy_kwh").alias("kwh")).collect()
        return {r["sensor_id"]: r["kwh"] for r in rows}

    # ---- phases -------------------------------------------------------------------------

    def warm_up(self) -> None:
        """JIT, Python workers and Delta classes warmed on a small day before timing."""
        path, _ = feed.span_file(self.data, 11, 24)
        config = feed.with_lake(self.topic_with("warm", path), self.lake("warm"))
        timing.catch_up(self.spark, config)
        self.spark_batch(config, self.results / "lakes" / "warm-batch")
        feed.delete_topic(config)
        shutil.rmtree(config.lake, ignore_errors=True)

    def phase_publish(self) -> None:
        """Metric 5: the month published at speedup 0, kafka-python and confluent-kafka."""
        path, count = feed.readings_file(self.data, self.plan.month)
        res: dict[str, Any] = {"readings": count, "kafka_python": [], "confluent_kafka": []}
        self.out["publish"] = res
        for i in range(self.plan.reps):
            config = feed.with_topic(self.config, feed.fresh_topic("pub"))
            self.note(f"publish: kafka-python {i + 1}/{self.plan.reps}")
            res["kafka_python"].append({**feed.publish_kafka_python(config, path),
                                        "load_1m": env.load_average()[0]})
            if i == 0:  # this topic is the month's input for the catch-up figures
                self.month_topic = config
            else:
                feed.delete_topic(config)
        if feed.confluent_available():
            for i in range(self.plan.reps):
                config = feed.with_topic(self.config, feed.fresh_topic("pubck"))
                self.note(f"publish: confluent-kafka {i + 1}/{self.plan.reps}")
                res["confluent_kafka"].append({**feed.publish_confluent(config, path),
                                               "load_1m": env.load_average()[0]})
                feed.delete_topic(config)
        else:
            res["confluent_kafka_note"] = "not installed (pip install -r bench/requirements.txt)"
        for client in ("kafka_python", "confluent_kafka"):
            rates = [r["rate"] for r in res[client]]
            res[f"{client}_median_rate"] = statistics.median(rates) if rates else None

    def phase_catchup(self) -> None:
        """Metric 1: the month through bronze -> silver -> gold vs one Spark batch job and
        the DuckDB oracle, interleaved (pipeline, batch, pipeline, batch ...)."""
        path, count = feed.readings_file(self.data, self.plan.month)
        config = getattr(self, "month_topic", None)
        if config is None:
            config = self.topic_with("month", path)
            self.month_topic = config
        res: dict[str, Any] = {
            "input": feed.spec_label(self.plan.month, count), "readings": count,
            "pipeline": [], "spark_batch": [], "oracle": [],
        }
        self.out["catchup_month"] = res
        for i in range(self.plan.reps):
            self.note(f"catch-up month: pipeline {i + 1}/{self.plan.reps}")
            lake_config = feed.with_lake(config, self.lake(f"month-{i}"))
            res["pipeline"].append(timing.catch_up(self.spark, lake_config))
            if i == 0:
                self.month_lake = lake_config
                gold = self.gold_totals(lake_config)
            else:
                shutil.rmtree(lake_config.lake, ignore_errors=True)
            self.note(f"catch-up month: Spark batch {i + 1}/{self.plan.reps}")
            batch = self.spark_batch(config, self.results / "lakes" / "batch")
            totals = batch.pop("totals")
            res["spark_batch"].append(batch)
            self.note(f"catch-up month: DuckDB oracle {i + 1}/{self.plan.reps}")
            oracle = baseline.duckdb_oracle(path, config)
            if oracle is None:
                res["oracle_note"] = "the oracle package not importable"
            else:
                oracle_totals = oracle.pop("totals")
                res["oracle"].append({"seconds": round(oracle["seconds"], 3)})
        res["agreement_max_abs_kwh"] = {
            "pipeline_vs_batch": _max_diff(gold, totals),
            **({"pipeline_vs_oracle": _max_diff(gold, oracle_totals)} if oracle else {}),
        }
        summarise_catchup(res, count)

    def phase_memory(self) -> None:
        """Metric 7: the month caught up in chunks of days on one lake; driver memory and
        silver state size after each chunk."""
        path, count = feed.readings_file(self.data, self.plan.month)
        config = feed.with_lake(self.config, self.lake("chunks"))
        config = feed.with_topic(config, feed.fresh_topic("chunks"))
        days = self.plan.month.days
        bounds = [round(days * k / self.plan.chunks) for k in range(self.plan.chunks + 1)]
        start = datetime.fromisoformat(self.plan.month.start)
        res: dict[str, Any] = {"input": feed.spec_label(self.plan.month, count), "samples": []}
        self.out["memory_state"] = res
        res["samples"].append({"after_days": 0, **env.memory_sample(self.spark)})
        from datetime import timedelta

        for k in range(self.plan.chunks):
            first = (start + timedelta(days=bounds[k])).strftime("%Y-%m-%d")
            end = (start + timedelta(days=bounds[k + 1])).strftime("%Y-%m-%d")
            self.note(f"memory/state: chunk {k + 1}/{self.plan.chunks} ({first} .. {end})")
            feed.bulk_publish(self.spark, config, path, first, end)
            took = timing.catch_up(self.spark, config)
            res["samples"].append({
                "after_days": bounds[k + 1], "catchup_s": took["seconds"],
                "state_mb": env.dir_size_mb(config.checkpoint("silver") / "state"),
                "checkpoints_mb": env.dir_size_mb(config.lake / "_checkpoints"),
                **env.memory_sample(self.spark),
            })
            self.save()
        self.note("memory/state: the month by `meterlake run --once` in its own process")
        own = self.lake("own-process")
        res["own_process"] = env.own_process_run([
            "--lake", str(own), "--topic", config.kafka.topic,
            "--bootstrap", config.kafka.bootstrap, "run", "--once"])
        shutil.rmtree(own, ignore_errors=True)
        feed.delete_topic(config)
        shutil.rmtree(config.lake, ignore_errors=True)

    def phase_live(self) -> None:
        """Metrics 2 and 3: live mode, 1 s triggers, 11 meters published at a high speedup."""
        path, _ = feed.readings_file(self.data, self.plan.month)
        config = feed.with_lake(self.config, self.lake("live"))
        config = feed.with_topic(config, feed.fresh_topic("live"))
        self.note(f"live: {self.plan.fresh_s:.0f} s at speedup {self.plan.speedup:g}, 1 s triggers")
        res = live.freshness_run(
            self.spark, config, path, self.plan.speedup, self.plan.fresh_s, self.plan.warmup_s
        )
        res["load_1m_end"] = env.load_average()[0]
        self.out["live"] = res
        self.live_lake = config

    def phase_queries(self) -> None:
        """Metric 6: views and ad-hoc SQL on the live lake (many small commits) vs an
        in-memory copy; file counts; the same queries after OPTIMIZE."""
        config = getattr(self, "live_lake", None)
        res: dict[str, Any] = {}
        self.out["queries"] = res
        month = getattr(self, "month_lake", None)
        if month is not None:
            res["files_after_month_catchup"] = queries.file_counts(
                month, queries.SILVER + queries.GOLD)
        if config is None:
            res["note"] = "no live lake (phase live not run)"
            return
        reps = self.plan.query_reps
        self.note("queries: lake vs in-memory copy")
        res["files_after_live"] = queries.file_counts(config, queries.SILVER + queries.GOLD)
        res["lake"] = queries.on_lake(config, reps)
        res["memory"] = queries.in_memory(config, reps)
        res["lake_open_once"] = queries.on_open_lake(config, reps)
        self.note("queries: OPTIMIZE, then again")
        res["optimize_s"] = round(queries.compact(
            self.spark, config, queries.SILVER + queries.GOLD), 2)
        res["files_after_optimize"] = queries.file_counts(config, queries.SILVER + queries.GOLD)
        res["lake_after_optimize"] = queries.on_lake(config, reps)
        res["ratios"] = {
            name: {
                "lake_vs_memory": _ratio(
                    res["lake"][name]["p95_ms"], res["memory"][name]["p95_ms"]),
                "before_vs_after_optimize": _ratio(
                    res["lake"][name]["p95_ms"], res["lake_after_optimize"][name]["p95_ms"]),
            }
            for name in res["lake"]
        }
        for name in res["ratios"]:
            res["ratios"][name]["open_lake_vs_memory"] = _ratio(
                res["lake_open_once"][name]["p95_ms"], res["memory"][name]["p95_ms"])

    def phase_served(self) -> None:
        """Metric 6b: the views through `meterlake serve`'s JSON API (tables kept open,
        answers cached per gold version) vs DuckDB over the same rows in memory; on the
        month lake of phase catchup, else the live lake, else a catch-up of its own."""
        config = getattr(self, "month_lake", None) or getattr(self, "live_lake", None)
        res: dict[str, Any] = {}
        self.out["served"] = res
        if config is None:
            path, count = feed.readings_file(self.data, self.plan.month)
            self.note(f"served: a catch-up of {count:,} readings to serve")
            config = feed.with_lake(self.topic_with("served", path), self.lake("served"))
            res["catch_up"] = timing.catch_up(self.spark, config)
        res["lake"] = str(config.lake)
        reps = self.plan.query_reps * 3
        self.note("served: the API vs an in-memory copy")
        res["memory"] = queries.in_memory(config, reps)
        res["api"] = queries.served(config, reps)
        res["api_uncached"] = queries.served(config, reps, cached=False)
        res["ratios"] = {
            view: {
                "api_vs_memory": _ratio(res["api"][view]["p95_ms"],
                                        res["memory"][view]["p95_ms"]),
                "api_uncached_vs_memory": _ratio(res["api_uncached"][view]["p95_ms"],
                                                 res["memory"][view]["p95_ms"]),
            }
            for view in queries.VIEWS
        }

    def phase_throughput(self) -> None:
        """Metric 4: a backlog of thousands of meters drained by the live pipeline with
        bounded batches, against a Kafka -> noop consumer of the same topic."""
        meters, hours = self.plan.drain
        path, count = feed.span_file(self.data, meters, hours)
        self.note(f"throughput: publishing {count:,} readings of {meters} meters")
        config = feed.with_lake(self.topic_with("drain", path), self.lake("drain"))
        res: dict[str, Any] = {"input": f"{meters} meters x {hours:g} h ({count:,} readings)"}
        self.out["throughput"] = res
        noop = []
        for i in range(self.plan.reps):
            self.note(f"throughput: noop consumer {i + 1}/{self.plan.reps}")
            noop.append(baseline.noop_consumer(
                self.spark, config, self.results / "lakes" / "noop-checkpoint"))
        res["noop"] = noop
        res["noop_median_rate"] = round(statistics.median(r["rate"] for r in noop), 1)
        self.note("throughput: live pipeline draining the backlog")
        last = feed.last_readings(path, config.semantics.zone)
        res["pipeline"] = live.drain_run(
            self.spark, config, last, count, "2 seconds", self.plan.drain_max_offsets,
            timeout_s=1800 if not self.plan.quick else 600,
        )
        res["load_1m_end"] = env.load_average()[0]
        feed.delete_topic(config)
        shutil.rmtree(config.lake, ignore_errors=True)

    def phase_scale(self) -> None:
        """Metric 8 (and the large catch-up of metric 1): a span for 11 ... 5000 meters."""
        res: dict[str, Any] = {"points": []}
        self.out["scale"] = res
        for meters, hours in self.plan.scale:
            path, count = feed.span_file(self.data, meters, hours)
            self.note(f"scale: {meters} meters x {hours:g} h = {count:,} readings: publishing")
            config = feed.with_lake(self.topic_with("scale", path), self.lake(f"scale-{meters}"))
            self.note(f"scale: {meters} meters: catch-up")
            point: dict[str, Any] = {"meters": meters, "hours": hours, "readings": count}
            point.update(timing.catch_up(self.spark, config))
            point["readings_per_s"] = round(count / point["seconds"], 1)
            point["state_mb"] = env.dir_size_mb(config.checkpoint("silver") / "state")
            point["memory"] = env.memory_sample(self.spark)
            if (meters, hours) == self.plan.large:
                self.note(f"scale: {meters} meters: Spark batch and DuckDB oracle")
                batch = self.spark_batch(config, self.results / "lakes" / "batch")
                batch.pop("totals")
                point["spark_batch"] = batch
                oracle = baseline.duckdb_oracle(path, config)
                if oracle:
                    point["oracle"] = {"seconds": round(oracle["seconds"], 3)}
            res["points"].append(point)
            feed.delete_topic(config)
            shutil.rmtree(config.lake, ignore_errors=True)
            self.save()
        if self.plan.cluster_scale:
            from bench.cluster import cluster_catch_ups

            res["cluster"] = cluster_catch_ups(self, self.plan.cluster_scale)

    def phase_fleet(self) -> None:
        """A utility's fleet: `plan.fleet` meters reading every 15 minutes. A day caught
        up against the Spark batch job, then the next day's first readings published live
        at the fleet's own rate (speedup 1) onto the caught-up lake: freshness, batch
        times and the state of every meter."""
        meters = self.plan.fleet
        path, _ = feed.readings_file(self.data, MonthSpec(meters=meters, days=2,
                                                              cadence_s=900))
        day2 = feed.next_day(self.plan.month.start)
        self.note(f"fleet: {meters:,} meters x 24 h at 15 min: publishing")
        config = feed.with_lake(self.topic_with("fleet", path, end=day2), self.lake("fleet"))
        res: dict[str, Any] = {"meters": meters, "input": f"{meters:,} meters x 24 h, 15 min"}
        self.out["fleet"] = res
        self.note("fleet: catch-up of the day")
        res["catchup"] = timing.catch_up(self.spark, config)
        res["catchup"]["readings"] = count_day = feed.count_before(path, day2)
        res["readings_per_s"] = round(count_day / res["catchup"]["seconds"], 1)
        res["state_mb"] = env.dir_size_mb(config.checkpoint("silver") / "state")
        res["memory"] = env.memory_sample(self.spark)
        self.note("fleet: Spark batch job over the same day")
        batch = self.spark_batch(config, self.results / "lakes" / "batch")
        batch.pop("totals")
        res["spark_batch"] = batch
        self.save()
        live_path = feed.day_slice(path, day2, self.data / f"fleet-{meters}-live.txt")
        self.note(f"fleet: live at the fleet's rate for {self.plan.fresh_s:.0f} s")
        res["live"] = live.freshness_run(
            self.spark, config, live_path, 1.0, self.plan.fresh_s, self.plan.warmup_s,
            trigger="2 seconds", poll_s=1.0, floor_s=0, silver_source="bronze",
        )
        res["state_mb_after_live"] = env.dir_size_mb(config.checkpoint("silver") / "state")
        feed.delete_topic(config)
        shutil.rmtree(config.lake, ignore_errors=True)

    def phase_writers(self) -> None:
        """Gold's write of one live batch to the four tables: Spark MERGE (before),
        delta-rs MERGE, and the partition overwrite gold.job does."""
        from bench.writers import compare_compaction, compare_writers
        from meterlake.core.tariff import load_tariff

        self.note("writers: the gold write of a live batch, three ways")
        tariff = load_tariff(self.config.semantics.tariff, self.config.semantics.zone)
        self.out["gold_writers"] = compare_writers(self.spark, self.data / "writers", tariff)
        self.note("writers: small appends with inline compaction and without")
        self.out["compaction"] = compare_compaction(
            self.spark, self.data / "compaction", appends=self.plan.compaction_appends)

    def phase_objectstore(self) -> None:
        """The month with the lake on the local S3 store vs local disk (bench/objectstore.py)."""
        self.out["objectstore"] = objectstore.measure(self)

    def phase_steps(self) -> None:
        """The month replayed plainly and in hourly steps (bench/steps.py)."""
        self.out["steps"] = steps.measure(self)

    def phase_profile(self) -> None:
        """The Python silver step (silver.bucket): CPU per message and per meter."""
        from bench.profile import judge_profile

        month, _ = feed.readings_file(self.data, self.plan.month)
        self.note("profile: the silver step per message and per meter")
        self.out["profile_silver"] = judge_profile(self.config, month)


def _max_diff(a: dict[str, float], b: dict[str, float]) -> float | None:
    if not a or not b or set(a) != set(b):
        return None
    return max(abs(a[k] - b[k]) for k in a)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarise_catchup(res: dict[str, Any], count: int) -> None:
    pipe = res["pipeline"]
    res["pipeline_median_s"] = _median([r["seconds"] for r in pipe])
    res["pipeline_median_cpu_s"] = _median([r["cpu_s"] for r in pipe])
    res["layers_median_s"] = {
        layer: _median([r["layers"][layer] for r in pipe]) for layer in ("bronze", "silver", "gold")
    }
    res["layers_readings_per_s"] = {
        layer: round(count / s, 1) for layer, s in res["layers_median_s"].items() if s
    }
    res["pipeline_readings_per_s"] = round(count / res["pipeline_median_s"], 1)
    res["spark_batch_median_s"] = _median([r["seconds"] for r in res["spark_batch"]])
    res["spark_batch_median_cpu_s"] = _median([r["cpu_s"] for r in res["spark_batch"]])
    res["oracle_median_s"] = _median([r["seconds"] for r in res["oracle"]])


# ---- the summary ----------------------------------------------------------------------------


def summary_rows(out: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """metric, value, baseline, ratio, target, met (None: informational)."""
    rows: list[dict[str, Any]] = []

    def row(metric, value, unit="", base=None, ratio=None, target=None, met=None, note="",
            id=None):
        rows.append({"metric": metric, "value": value, "unit": unit, "baseline": base,
                     "ratio": ratio, "target": target, "met": met, "note": note,
                     **({"id": id} if id else {})})

    c = out.get("catchup_month")
    if c and c.get("pipeline_median_s"):
        ratio = _ratio(c["pipeline_median_s"], c["spark_batch_median_s"])
        row("1 month catch-up e2e vs Spark batch", c["pipeline_median_s"], "s",
            c["spark_batch_median_s"], ratio, "<= 1.0x", ratio is not None and ratio <= 1.0,
            f"median of {len(c['pipeline'])}; {c['readings']:,} readings",
            id="catchup_vs_batch")
        row("1 month catch-up, excluding JVM start", c["pipeline_median_s"], "s", None, None,
            "< 60 s", c["pipeline_median_s"] < 60)
        cpu_ratio = _ratio(c["pipeline_median_cpu_s"], c["spark_batch_median_cpu_s"])
        row("1 month catch-up CPU vs Spark batch CPU", c["pipeline_median_cpu_s"], "cpu-s",
            c["spark_batch_median_cpu_s"], cpu_ratio, None, None, "load-robust companion")
        if c.get("oracle_median_s"):
            row("1 month catch-up vs DuckDB oracle (floor)", c["pipeline_median_s"], "s",
                c["oracle_median_s"], _ratio(c["pipeline_median_s"], c["oracle_median_s"]))
        for layer, s in c["layers_median_s"].items():
            row(f"1 month {layer} layer", s, "s", None, None, None, None,
                f"{c['layers_readings_per_s'].get(layer, 0):,.0f} readings/s")
        row("1 month pipeline readings/s", c["pipeline_readings_per_s"], "/s")
    s = out.get("scale")
    if s:
        for p in s["points"]:
            if "spark_batch" in p:
                ratio = _ratio(p["seconds"], p["spark_batch"]["seconds"])
                row(f"1 large catch-up ({p['meters']} m x {p['hours']:g} h) vs Spark batch",
                    p["seconds"], "s", round(p["spark_batch"]["seconds"], 2), ratio, "<= 1.0x",
                    ratio is not None and ratio <= 1.0, f"{p['readings']:,} readings, 1 rep",
                    id="scale_5000_vs_batch")
                if p.get("oracle"):
                    row("1 large catch-up vs DuckDB oracle", p["seconds"], "s",
                        p["oracle"]["seconds"], _ratio(p["seconds"], p["oracle"]["seconds"]))
    lv = out.get("live")
    if lv:
        floor = lv["batches"].get("floor_noop", {}).get("median_ms")
        delta_floor = lv["batches"].get("floor_delta", {}).get("median_ms")
        row("2 empty batch with a Delta sink", delta_floor, "ms", floor,
            _ratio(delta_floor, floor), None, None,
            "a 1-row Kafka->Delta micro-batch; baseline: the same with a noop sink")
        for name in ("bronze", "silver", "gold"):
            b = lv["batches"].get(name, {})
            ratio = _ratio(b.get("median_ms"), delta_floor)
            target = None if name == "bronze" else "<= 2x"
            row(f"2 per-batch {name} vs empty Delta-sink batch", b.get("median_ms"), "ms",
                delta_floor, ratio, target,
                None if target is None else ratio is not None and ratio <= 2,
                f"{b.get('batches')} batches, median {b.get('median_rows')} rows",
                id=None if name == "bronze" else f"{name}_batch_vs_empty")
        row("3 freshness p50", lv["p50_s"], "s", None, None, "<= 3 s",
            lv["p50_s"] is not None and lv["p50_s"] <= 3,
            f"{plan.fresh_s:.0f} s run, {lv['latencies_measured']:,} readings",
            id="freshness_p50_s")
        row("3 freshness p95", lv["p95_s"], "s")
        row("3 freshness p50, 1st vs 2nd half of the run", lv.get("p50_second_half_s"), "s",
            lv.get("p50_first_half_s"), _ratio(lv.get("p50_second_half_s"),
                                               lv.get("p50_first_half_s")),
            None, None, "> 1: latency growing, input rate not sustained")
        row("3 freshness p99", lv["p99_s"], "s", None, None, "<= 8 s",
            lv["p99_s"] is not None and lv["p99_s"] <= 8,
            "None: beyond the run (readings never visible)" if lv["p99_s"] is None else "",
            id="freshness_p99_s")
        if lv.get("readings_never_seen"):
            row("3 readings not visible in gold by the end", lv["readings_never_seen"], "",
                None, None, None, None, "counted as slower than the max measured")
    t = out.get("throughput")
    if t and t.get("pipeline"):
        rate = t["pipeline"]["rate"]
        ratio = _ratio(rate, t["noop_median_rate"])
        row("4 sustainable throughput", rate, "/s", None, None, ">= 100k/s",
            rate is not None and rate >= 100_000, t["input"], id="throughput_rps")
        row("4 throughput vs Kafka->noop", rate, "/s", t["noop_median_rate"], ratio,
            ">= 0.3x (moonshot)", ratio is not None and ratio >= 0.3,
            id="throughput_vs_noop")
    p = out.get("publish")
    if p:
        kp, ck = p.get("kafka_python_median_rate"), p.get("confluent_kafka_median_rate")
        row("5 publish month, kafka-python", kp, "/s", None, None, None, None,
            f"{p['readings']:,} readings, speedup 0")
        if ck:
            row("5 publish month, confluent-kafka", ck, "/s", kp, _ratio(ck, kp))
    q = out.get("queries")
    if q and q.get("ratios"):
        worst = max(q["ratios"], key=lambda n: q["ratios"][n]["lake_vs_memory"] or 0)
        r = q["ratios"][worst]["lake_vs_memory"]
        row(f"6 query p95 lake vs in-memory (worst: {worst})", q["lake"][worst]["p95_ms"], "ms",
            q["memory"][worst]["p95_ms"], r, "<= 3x", r is not None and r <= 3)
        r = max(x["open_lake_vs_memory"] or 0 for x in q["ratios"].values())
        row("6 query p95 on an open lake connection vs in-memory (worst)", None, "", None, r,
            None, None, "tables opened once: the scan alone")
        row("6 opening the 4 gold tables (lake.connect)", q["lake_open_once"]["connect"]["p95_ms"],
            "ms", None, None, None, None, "p95")
        views = [q["ratios"][v]["lake_vs_memory"] for v in queries.VIEWS]
        row("6 views p95 lake vs in-memory (median of 4)", None, "", None,
            round(statistics.median(views), 2), "<= 3x", statistics.median(views) <= 3)
        worst = max(q["ratios"], key=lambda n: q["ratios"][n]["before_vs_after_optimize"] or 0)
        r = q["ratios"][worst]["before_vs_after_optimize"]
        row(f"6 query p95 before vs after OPTIMIZE (worst: {worst})",
            q["lake"][worst]["p95_ms"], "ms", q["lake_after_optimize"][worst]["p95_ms"], r,
            "<= 1.3x", r is not None and r <= 1.3)
        files = q["files_after_live"]
        row("6 gold files after live run (4 tables)",
            sum(files[x]["num_files"] for x in queries.GOLD), "files",
            sum(q["files_after_optimize"][x]["num_files"] for x in queries.GOLD), None, None,
            None, "baseline = after OPTIMIZE")
        row("6 silver files after live run (3 tables)",
            sum(files[x]["num_files"] for x in queries.SILVER), "files",
            sum(q["files_after_optimize"][x]["num_files"] for x in queries.SILVER))
    sv = out.get("served")
    if sv and sv.get("ratios"):
        worst = max(queries.VIEWS, key=lambda v: sv["ratios"][v]["api_vs_memory"] or 0)
        r = sv["ratios"][worst]["api_vs_memory"]
        row(f"6 query p95 through the serve API vs in-memory (worst: {worst})",
            sv["api"][worst]["p95_ms"], "ms", sv["memory"][worst]["p95_ms"], r, "<= 3x",
            r is not None and r <= 3, "HTTP on loopback, answers cached per gold version",
            id="served_query_p95_vs_memory")
        worst = max(queries.VIEWS, key=lambda v: sv["ratios"][v]["api_uncached_vs_memory"] or 0)
        r = sv["ratios"][worst]["api_uncached_vs_memory"]
        row(f"6 the same, answer cache off (worst: {worst})", sv["api_uncached"][worst]["p95_ms"],
            "ms", sv["memory"][worst]["p95_ms"], r, None, None,
            "every request queries the open tables", id="served_query_p95_uncached_vs_memory")
    w = out.get("gold_writers")
    if w:
        now = w["partition_overwrite"]["median_ms"]
        for way in ("spark_merge", "delta_rs_merge"):
            row(f"2 gold write of a batch, 4 tables: {way} vs partition overwrite",
                w[way]["median_ms"], "ms", now, _ratio(w[way]["median_ms"], now), None, None,
                f"{w['meters']} meters, a half hour per batch, median of {w['batches'] - 2}")
    c = out.get("compaction")
    if c:
        inline, scheduled = c["inline"], c["scheduled"]
        for stat in ("p99_ms", "max_ms"):
            row(f"2 small append {stat[:-3]}: inline auto compaction vs scheduled",
                inline[stat], "ms", scheduled[stat], _ratio(inline[stat], scheduled[stat]),
                None, None, f"{c['appends'] - 2} appends of {c['rows']} rows; the scheduled "
                f"OPTIMIZE took {scheduled['optimize_s']} s beside the stream")
    m = out.get("memory_state")
    if m and len(m["samples"]) > 1:
        last = m["samples"][-1]
        first = m["samples"][1]
        own = m.get("own_process") or {}
        if own.get("exit_code") == 0 and own.get("jvm_peak_mb"):
            row("7 peak JVM RSS, the month by run --once in its own process",
                own["jvm_peak_mb"], "MB", None, None, "<= 1500 MB", own["jvm_peak_mb"] <= 1500,
                f"{own['seconds']} s with the JVM's start", id="jvm_rss_mb")
            row("7 peak RSS of the bench's JVM (catch-ups, Spark batch jobs, chunks)",
                last["jvm_peak_mb"], "MB")
        else:
            row("7 peak JVM RSS over month catch-up", last["jvm_peak_mb"], "MB", None, None,
                "<= 1500 MB", last["jvm_peak_mb"] <= 1500, id="jvm_rss_mb")
        row("7 peak Python driver RSS", last["python_peak_mb"], "MB")
        row("7 silver state size first vs last chunk", last["state_mb"], "MB",
            first["state_mb"], _ratio(last["state_mb"], first["state_mb"]), None, None,
            "flat in time would be ~1x")
    if s:
        for p in s["points"]:
            row(f"8 scale {p['meters']} m x {p['hours']:g} h", p["seconds"], "s", None, None,
                None, None, f"{p['readings']:,} readings, {p['readings_per_s']:,.0f}/s, "
                f"state {p['state_mb']} MB")
        local = {(p["meters"], p["hours"]): p["seconds"] for p in s["points"]}
        for p in s.get("cluster", {}).get("points", []):
            base = local.get((p["meters"], p["hours"]))
            row(f"8 scale {p['meters']} m x {p['hours']:g} h, loopback cluster", p["seconds"],
                "s", base, _ratio(p["seconds"], base), None, None,
                f"{p['readings']:,} readings, {p['readings_per_s']:,.0f}/s, CPU driver "
                f"{p['cpu_s']} + cluster {p['cluster_cpu_s']} s; baseline = local[2]")
    f = out.get("fleet")
    if f and f.get("spark_batch"):
        c = f["catchup"]
        ratio = _ratio(c["seconds"], f["spark_batch"]["seconds"])
        row(f"9 fleet day ({f['input']}) vs Spark batch", c["seconds"], "s",
            round(f["spark_batch"]["seconds"], 2), ratio, "<= 1.0x",
            ratio is not None and ratio <= 1.0,
            f"{c['readings']:,} readings, {f['readings_per_s']:,.0f}/s, silver "
            f"{c['layers']['silver']} s", id="fleet_100k_vs_batch")
        row(f"9 fleet silver state, {f['meters']:,} meters", f["state_mb"], "MB", None, None,
            None, None, "RocksDB files of the silver checkpoint after the day",
            id="fleet_state_mb")
        lv = f.get("live") or {}
        if lv:
            row("9 fleet live freshness p99 (the fleet's own rate)", lv["p99_s"], "s", None,
                None, "<= 8 s", lv["p99_s"] is not None and lv["p99_s"] <= 8,
                f"{lv['readings_sent']:,} readings in {lv['published_s']} s, p50 "
                f"{lv['p50_s']} s", id="fleet_freshness_p99_s")
            for name in ("bronze", "silver", "gold"):
                b = lv["batches"].get(name, {})
                row(f"9 fleet live {name} batch", b.get("median_ms"), "ms", None, None, None,
                    None, f"{b.get('batches')} batches, median {b.get('median_rows')} rows")
    pr = out.get("profile_silver")
    if pr and pr.get("per_meter_cpu_us") is not None:
        row("10 silver CPU one more meter adds to a batch", pr["per_meter_cpu_us"], "us",
            620, _ratio(pr["per_meter_cpu_us"], 620), "<= 20 us",
            pr["per_meter_cpu_us"] <= 20,
            f"the step in Python, a fleet batch of {', '.join(pr['fleet_batch_cpu_ms'])} meters;"
            " baseline: one call per meter (2026-12-07)", id="silver_us_per_meter")
        row("10 silver CPU per message (Python step)", pr["per_message_cpu_us"], "us", 7.7,
            _ratio(pr["per_message_cpu_us"], 7.7), None, None,
            f"one meter's {pr['messages']:,} readings in one call")
    rows += objectstore.summary_rows(out)
    rows += steps.summary_rows(out)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("metric", "value", "baseline", "ratio", "target", "met?")
    cells = [
        (r["metric"], f"{_fmt(r['value'])} {r['unit']}".strip(), _fmt(r["baseline"]),
         _fmt(r["ratio"]) + ("x" if r["ratio"] is not None else ""), r["target"] or "-",
         "-" if r["met"] is None else _fmt(r["met"]))
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda values: "  ".join(  # noqa: E731
        v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for c in cells:
        print(line(c))


# ---- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--results", default=str(PROJECT_ROOT / "results"))
    parser.add_argument("--only", help=f"comma-separated phases among {','.join(PHASES)}")
    parser.add_argument("--no-copy", action="store_true",
                        help="do not copy a full run's results into bench/results-latest/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python warns whenever its event loop ran a task for over 0.1 s, which a
    # loaded publisher does all the time; the CLI keeps it quiet the same way.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    phases = [p.strip() for p in args.only.split(",")] if args.only else list(PHASES)
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}")

    from meterlake.core.session import build_session
    from meterlake.infra import broker

    plan = Plan.make(args.quick)
    results = Path(args.results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(results / "lakes", ignore_errors=True)
    shutil.rmtree(results / "kafka", ignore_errors=True)
    config = objectstore.with_store(feed.bench_config(load_config(), results), results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    bench = Bench(plan=plan, results=results, config=config)
    bench.json_path = results / f"bench-{stamp}.json"
    bench.out = {
        "started_utc": stamp, "mode": "quick" if plan.quick else "full",
        "phases": phases, "machine": env.machine(), "load_average_start": env.load_average(),
        "plan": {k: (str(v) if isinstance(v, MonthSpec) else v)
                 for k, v in plan.__dict__.items()},
        "errors": {},
    }
    began = time.monotonic()
    bench.note(f"{bench.out['mode']} run; results into {results}")
    t = time.monotonic()
    broker.start(config.broker)
    bench.out["broker_start_s"] = round(time.monotonic() - t, 1)
    try:
        t = time.monotonic()
        bench.spark = build_session(config)
        bench.spark.sparkContext.setLogLevel("ERROR")  # Kafka retries warn with stack traces
        bench.out["jvm_start_s"] = round(time.monotonic() - t, 1)
        bench.out["spark_conf"] = {
            "master": config.spark.master,
            "shuffle_partitions": config.spark.shuffle_partitions,
            "driver_memory": config.spark.driver_memory,
        }
        bench.note("warm-up")
        bench.warm_up()
        for phase in PHASES:  # fixed order: publish first (its topic feeds catch-up)
            if phase not in phases:
                continue
            try:
                getattr(bench, f"phase_{phase}")()
            except Exception as exc:
                bench.out["errors"][phase] = f"{type(exc).__name__}: {exc}"[:2000]
                traceback.print_exc()
            bench.out[f"load_after_{phase}"] = env.load_average()
            bench.save()
    finally:
        bench.out["load_average_end"] = env.load_average()
        bench.out["total_s"] = round(time.monotonic() - began, 1)
        if bench.spark is not None:
            bench.out["memory_end"] = env.memory_sample(bench.spark)
            bench.spark.stop()  # before the broker: Spark's cached producers would retry it
        broker.stop(config.broker)
        shutil.rmtree(results / "kafka", ignore_errors=True)
        shutil.rmtree(results / "lakes", ignore_errors=True)
        rows = summary_rows(bench.out, plan)
        bench.out["summary"] = rows
        bench.save()
    from bench.chart import draw

    png = bench.json_path.with_suffix(".png")
    draw(bench.out, rows, png)
    for src in (bench.json_path, png):
        shutil.copyfile(src, results / f"bench-latest{src.suffix}")
        if not args.no_copy and not plan.quick and set(phases) == set(PHASES):
            target = PROJECT_ROOT / "bench" / "results-latest"  # committed: full runs only
            target.mkdir(exist_ok=True)
            shutil.copyfile(src, target / f"bench{src.suffix}")
    print()
    m = bench.out["machine"]
    print(f"{bench.out['mode']} run, {m['cores']} cores, {m['memory_mb']:,} MB, load "
          f"{bench.out['load_average_start']} -> {bench.out['load_average_end']}, "
          f"{bench.out['total_s'] / 60:.1f} min; JVM start {bench.out.get('jvm_start_s')} s "
          "(excluded from every figure)")
    print_table(rows)
    if bench.out["errors"]:
        print(f"\nphases that failed: {', '.join(bench.out['errors'])} (see the JSON)")
    print(f"\n{bench.json_path}\n{png}")
    return 1 if bench.out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
