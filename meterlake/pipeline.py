"""Running the layers: catch-up (`run --once`), live streams, replay and the demo."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.config import Config
from meterlake.errors import MeterlakeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold")
GOLD_TABLES = ("month_energy", "day_energy", "halfhour_energy", "day_cost")


def start_layer(
    spark: SparkSession, config: Config, layer: str, once: bool
) -> list[StreamingQuery]:
    if layer == "bronze":
        from bronze.job import start_bronze

        return [start_bronze(spark, config, once)]
    if layer == "silver":
        from silver.job import start_silver

        return [start_silver(spark, config, once)]
    from gold.job import start_gold

    return [start_gold(spark, config, table, once) for table in GOLD_TABLES]


def _rows_read(query: StreamingQuery) -> int:
    return sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)


def _await(queries: list[StreamingQuery]) -> None:
    from pyspark.errors import StreamingQueryException

    try:
        for query in queries:
            query.awaitTermination()
    except StreamingQueryException as exc:
        for query in queries:
            query.stop()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeterlakeError(f"streaming query failed: {first[:500]}") from None


def check_layers(layers: list[str]) -> list[str]:
    unknown = [x for x in layers if x not in LAYERS]
    if unknown or not layers:
        raise MeterlakeError(
            f"unknown layer(s) {', '.join(unknown) or '(none)'}; use {','.join(LAYERS)}"
        )
    return [x for x in LAYERS if x in layers]


def run_once(
    spark: SparkSession, config: Config, layers: list[str], echo=print
) -> dict[str, float]:
    """Each layer catches up on everything available, in order; returns seconds per layer."""
    timings = {}
    for layer in check_layers(layers):
        echo(f"{layer:>6}: catching up ...")
        started = time.monotonic()
        queries = start_layer(spark, config, layer, once=True)
        _await(queries)
        timings[layer] = time.monotonic() - started
        rows = sum(_rows_read(q) for q in queries)
        echo(f"{layer:>6}: read {rows:,} rows in {timings[layer]:.1f} s")
    return timings


def run_live(spark: SparkSession, config: Config, layers: list[str], echo=print) -> None:
    """All layers' streams on their configured triggers, until interrupted."""
    queries = [
        q for layer in check_layers(layers) for q in start_layer(spark, config, layer, False)
    ]
    echo(f"running {', '.join(q.name for q in queries)}; Ctrl-C stops")
    try:
        spark.streams.awaitAnyTermination()
    except KeyboardInterrupt:
        echo("stopping ...")
    finally:
        for query in queries:
            query.stop()
    _await(queries)


def run(config: Config, layers: list[str], once: bool) -> None:
    from meterlake.session import build_session

    if "bronze" in layers:
        from meterlake.publish import ensure_broker_reachable

        ensure_broker_reachable(config)
    spark = build_session(config)
    if once:
        run_once(spark, config, layers)
    else:
        run_live(spark, config, layers)


def replay(config: Config, readings: Path, echo=print) -> Config:
    """A fresh topic and lake, publish --speedup 0, run --once, then the four views."""
    from meterlake.publish import publish_file
    from meterlake.session import build_session

    if not readings.exists():
        raise MeterlakeError(f"no such file: {readings}")
    if config.lake.exists() and any(config.lake.iterdir()):
        raise MeterlakeError(f"{config.lake} is not empty: replay into a fresh --lake")
    topic = f"{config.kafka.topic}-replay-{time.strftime('%Y%m%d%H%M%S')}"
    config = replace(config, kafka=replace(config.kafka, topic=topic))
    echo(f"replaying {readings} through topic {topic} into {config.lake}")
    publish_file(config, readings, speedup=0)
    run_once(build_session(config), config, list(LAYERS), echo=echo)
    show_answers(config, echo=echo)
    return config


def show_answers(config: Config, echo=print) -> None:
    from meterlake.lake import format_result, query_view

    titles = {
        "q1": "Q1 energy this month (kWh)",
        "q2": "Q2 energy today (kWh)",
        "q3": "Q3 half hours of today (kWh)",
        "q4": "Q4 cost today (EUR)",
    }
    for view, title in titles.items():
        echo(f"\n== {title} ==")
        echo(format_result(query_view(config, view, version=None, as_of=None), "table"))


def demo(config: Config) -> None:
    """What `make demo` runs: broker, a generated month, the whole pipeline, the answers."""
    import shutil

    from meterlake import broker
    from meterlake.generate import MonthSpec, write_readings

    print(broker.start(config.broker).describe())
    data = config.lake.parent / "demo-month.csv"
    started = time.monotonic()
    count = write_readings(MonthSpec(), data)
    print(
        f"generated {count:,} readings (11 meters, February 2024) into {data} "
        f"in {time.monotonic() - started:.1f} s"
    )
    if config.lake.exists():
        shutil.rmtree(config.lake)
    replay(config, data)
