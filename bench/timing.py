"""A timed catch-up: what the bench measures of one `run --once` over a fresh lake."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench import env
from meterlake.app import pipeline
from meterlake.core.catalog import LAYERS
from meterlake.core.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def catch_up(spark: SparkSession, config: Config) -> dict[str, Any]:
    """run_once over a fresh lake: seconds per layer and end to end, CPU seconds, and
    the durationMs breakdown of every query it started (run_once's on_start keeps them)."""
    started: list[Any] = []
    load0 = env.load_average()[0]
    cpu0 = env.cpu_snapshot(spark)
    began = time.monotonic()
    layers = pipeline.run_once(
        spark, config, list(LAYERS), echo=lambda _m: None, on_start=started.append)
    wall = time.monotonic() - began
    return {
        "seconds": round(wall, 2),
        "layers": {k: round(v, 2) for k, v in layers.items()},
        "cpu_s": round(env.cpu_seconds_between(cpu0, env.cpu_snapshot(spark)), 1),
        "load_1m": [load0, env.load_average()[0]],
        "progress": env.phase_totals(
            [{**p, "name": q.name} for q in started for p in q.recentProgress]),
    }
