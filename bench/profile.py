"""cProfile of the Python silver step (silver.judge) on samples of real messages.

Two shapes, because the step's cost has two parts: per message (parse, judge,
split) measured on one sensor's long run of readings, and per group (one call
of applyInPandasWithState's function per sensor and micro-batch) measured on
many sensors with a few readings each, as in a live batch of thousands of meters.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import time
from pathlib import Path
from typing import Any

from meterlake.core.config import Config


def _messages(path: Path, sensors: int | None, per_sensor: int | None):
    import pandas as pd

    groups: dict[str, list[tuple]] = {}
    stamp = pd.Timestamp("2024-02-01")
    with path.open(encoding="utf-8") as lines:
        for offset, line in enumerate(lines):
            ts, sensor, energy = line.rstrip("\n").split(";")
            if sensor not in groups:
                if sensors is not None and len(groups) >= sensors:
                    continue
                groups[sensor] = []
            if per_sensor is not None and len(groups[sensor]) >= per_sensor:
                continue
            value = json.dumps({"timestamp": ts, "sensor_id": sensor, "energy": float(energy)})
            groups[sensor].append((sensor.encode(), value.encode(), "t", 0, offset, stamp))
    columns = ["key", "value", "topic", "partition", "offset", "kafka_timestamp"]
    return {s: pd.DataFrame(rows, columns=columns) for s, rows in groups.items()}


class _State:
    exists = False

    def update(self, value) -> None:
        self.value = value


def _profile(fn) -> tuple[float, list[dict[str, Any]]]:
    profiler = cProfile.Profile()
    began = time.process_time()
    profiler.runcall(fn)
    cpu = time.process_time() - began
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    top = []
    for (file, line, name), (_cc, _nc, tottime, cumtime, _callers) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][3], reverse=True
    )[:40]:
        if "silver" in file or "pandas" in file or name in ("loads", "astype", "from_records"):
            top.append({
                "function": f"{Path(file).name}:{line}({name})",
                "cumulative_share": round(cumtime / cpu, 3) if cpu else None,
                "own_share": round(tottime / cpu, 3) if cpu else None,
            })
    return cpu, top[:14]


def judge_profile(config: Config, month: Path, many: Path) -> dict[str, Any]:
    """CPU per message (one sensor's month) and per group (1000 sensors x 15 messages),
    unprofiled timings plus the top functions by cumulative time under cProfile."""
    from silver.bucket import judge_buckets
    from silver.job import silver_rules

    rules = silver_rules(config)
    step = judge_buckets(rules)

    def run(frames) -> None:
        for sensor, frame in frames.items():
            list(step((sensor,), [frame], _State()))

    long_run = _messages(month, sensors=1, per_sensor=None)
    count = sum(len(f) for f in long_run.values())
    began = time.process_time()
    run(long_run)
    per_message_us = (time.process_time() - began) / count * 1e6
    _, top_message = _profile(lambda: run(long_run))

    small = _messages(many, sensors=1000, per_sensor=15)
    began = time.process_time()
    run(small)
    per_group_ms = (time.process_time() - began) / len(small) * 1e3
    _, top_group = _profile(lambda: run(small))
    return {
        "per_message_cpu_us": round(per_message_us, 1),
        "messages": count,
        "per_group_cpu_ms": round(per_group_ms, 2),
        "groups": len(small),
        "messages_per_group": 15,
        "top_per_message": top_message,
        "top_per_group": top_group,
    }
