"""Replaying a readings file into a fresh lake and the demo: publish, catch up, answers."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from meterlake.app.pipeline import run_once
from meterlake.core.catalog import LAYER_TABLES, LAYERS
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.progress import Progress


def replay(config: Config, readings: Path, echo=print, step: timedelta | None = None) -> Config:
    """A fresh topic and lake, publish --speedup 0, run --once, then the four views;
    with `step`, gold leaves a version per step of event time (meterlake.core.steps)."""
    from meterlake.core.session import build_session
    from meterlake.tools.publish import publish_file

    if not readings.exists():
        raise MeterlakeError(f"no such file: {readings}")
    if not lake_is_empty(config):
        raise MeterlakeError(f"{config.lake} is not empty: replay into a fresh --lake")
    topic = f"{config.kafka.topic}-replay-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    config = replace(config, kafka=replace(config.kafka, topic=topic))
    echo(f"replaying {readings} through topic {topic} into {config.lake}")
    if step is not None:
        config = with_step(config, step)
    publish_file(config, readings, speedup=0)
    run_once(build_session(config), config, list(LAYERS), echo=echo, progress=Progress)
    show_answers(config, echo=echo)
    return config


def with_step(config: Config, step: timedelta) -> Config:
    """The config with gold committing per `step` of event time (meterlake.core.steps)."""
    text = f"{step // timedelta(seconds=1)}s"
    return replace(config, streams=replace(config.streams, gold_step=text))


def lake_is_empty(config: Config) -> bool:
    """No file in a local lake; no Delta table in one on an object store."""
    if isinstance(config.lake, Path):
        return not (config.lake.exists() and any(config.lake.iterdir()))
    from deltalake import DeltaTable

    return not any(DeltaTable.is_deltatable(str(config.table_path(table)))
                   for tables in LAYER_TABLES.values() for table in tables)


def show_answers(config: Config, echo=print) -> None:
    from meterlake.app.output import format_result
    from meterlake.read.answers import query_view

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

    from meterlake.infra import broker
    from meterlake.tools.generate import MonthSpec, write_readings

    print(broker.start(config.broker).describe())
    local = config.lake if isinstance(config.lake, Path) else None
    data = (local.parent if local else Path(".")) / "demo-month.csv"
    started = time.monotonic()
    count = write_readings(MonthSpec(), data)
    print(
        f"generated {count:,} readings (11 meters, February 2024) into {data} "
        f"in {time.monotonic() - started:.1f} s"
    )
    if local and local.exists():
        shutil.rmtree(local)
    replay(config, data)
    print(f"\nthe answers as a live page: meterlake serve --lake {config.lake}"
          "  ->  http://127.0.0.1:8050/")
