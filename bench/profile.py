"""CPU of the Python silver step (silver.bucket) on samples of real messages.

Two shapes, because the step's cost has two parts:
- per message: one sensor's month of readings in one call;
- per meter: a live batch of a fleet, every meter with its window in the state and
  one new reading (a 15-minute meter in a 10-second batch), in one bucket call of
  `small` and of `large` meters; the slope between the two is what one more meter
  adds to a batch (`silver_us_per_meter`), the intercept what a call costs.
The top functions by cumulative time under cProfile are listed for each shape.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meterlake.core.config import Config

SECOND = 10**6


def _frame(sensors: list[str], ts_us: np.ndarray, energy: np.ndarray) -> pd.DataFrame:
    """Bronze rows as silver.job.judged hands them to the step, fields read by the JVM."""
    count = len(sensors)
    stamps = pd.to_datetime(ts_us, unit="us").strftime("%Y-%m-%d %H:%M:%S")
    values = [
        f'{{"timestamp": "{t}", "sensor_id": "{s}", "energy": {e!r}}}'.encode()
        for t, s, e in zip(stamps, sensors, energy.tolist(), strict=True)
    ]
    return pd.DataFrame({
        "sensor_key": sensors, "key": [s.encode() for s in sensors], "value": values,
        "topic": "t", "partition": np.arange(count) % 3, "offset": np.arange(count),
        "kafka_ts_us": 1_706_745_600_000_000,
        "fast_ts_us": ts_us, "fast_energy": energy,
    })  # fmt: skip


def _month(path: Path) -> pd.DataFrame:
    """One sensor's readings of the file (its first sensor's)."""
    lines = pd.read_csv(path, sep=";", header=None, names=["ts", "sensor", "energy"])
    lines = lines[lines["sensor"] == lines["sensor"].iloc[0]]
    ts = (pd.to_datetime(lines["ts"]) - pd.Timestamp("1970-01-01")) // pd.Timedelta("1us")
    return _frame(lines["sensor"].tolist(), ts.to_numpy(), lines["energy"].to_numpy(float))


def _fleet(meters: int):
    """A fleet's live batch: each meter's window (one reading at 00:00) and its next
    reading, 15 minutes later."""
    from silver.bucket import Windows

    t0 = int(pd.Timestamp("2024-02-05").value // 1000)
    ids = np.array([f"PT{m:08d}" for m in range(meters)], dtype=object)
    base = 1000.0 + np.arange(meters) * 0.37
    windows = Windows(ids, np.ones(meters, np.int64), np.full(meters, t0, np.int64), base)
    batch = _frame(ids.tolist(), np.full(meters, t0 + 900 * SECOND, np.int64), base + 0.25)
    return windows, batch


def _cpu(fn, repeat: int = 3) -> float:
    """The least CPU seconds of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        fn()
        best = min(best, time.process_time() - began)
    return best


def _top(fn) -> list[dict[str, Any]]:
    profiler = cProfile.Profile()
    began = time.process_time()
    profiler.runcall(fn)
    cpu = time.process_time() - began
    stats = pstats.Stats(profiler, stream=io.StringIO())
    top = []
    for (file, line, name), (_cc, _nc, tottime, cumtime, _callers) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][3], reverse=True
    )[:40]:
        if "silver" in file or "pandas" in file or "numpy" in file:
            top.append({
                "function": f"{Path(file).name}:{line}({name})",
                "cumulative_share": round(cumtime / cpu, 3) if cpu else None,
                "own_share": round(tottime / cpu, 3) if cpu else None,
            })
    return top[:14]


def judge_profile(config: Config, month: Path, small: int = 1_000, large: int = 20_000
                  ) -> dict[str, Any]:  # fmt: skip
    """CPU per message (one sensor's month in one call) and per meter (the slope of a
    fleet batch's CPU from `small` to `large` meters), with the top functions."""
    from silver.bucket import Windows, judge_bucket
    from silver.job import silver_rules

    rules = silver_rules(config)
    now_us = time.time_ns() // 1000

    one = _month(month)
    per_message = _cpu(lambda: judge_bucket(one, Windows.empty(), rules, now_us)) / len(one)
    fleets = {n: _fleet(n) for n in (small, large)}
    cpu = {n: _cpu(lambda f=f: judge_bucket(f[1], f[0], rules, now_us)) for n, f in fleets.items()}
    per_meter = (cpu[large] - cpu[small]) / (large - small)
    windows, batch = fleets[large]
    return {
        "per_message_cpu_us": round(per_message * 1e6, 2),
        "messages": len(one),
        "per_meter_cpu_us": round(per_meter * 1e6, 2),
        "call_cpu_ms": round((cpu[small] - small * per_meter) * 1e3, 2),
        "fleet_batch_cpu_ms": {str(n): round(s * 1e3, 1) for n, s in cpu.items()},
        "state_bytes_per_meter": round(sum(map(len, windows.pack())) / large, 1),
        "top_per_message": _top(lambda: judge_bucket(one, Windows.empty(), rules, now_us)),
        "top_per_meter": _top(lambda: judge_bucket(batch, windows, rules, now_us)),
    }
