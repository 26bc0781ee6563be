"""Bench phase `steps` (issue 27): the month replayed as `meterlake replay` does it
(a fresh topic, publish, catch up) plainly and with `--step 1h` (one gold version
per hour of event time), interleaved; summary id `step_replay_vs_plain`."""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import timedelta
from typing import Any

from bench import env, feed
from meterlake.app.replay import replay
from meterlake.core.config import Config
from meterlake.read.travel import commits_of, open_table

STEP = timedelta(hours=1)


def _replay(bench: Any, name: str, path, step: timedelta | None) -> dict[str, Any]:
    config: Config = feed.with_lake(bench.config, bench.lake(name))
    cpu0 = env.cpu_snapshot(bench.spark)
    began = time.monotonic()
    replayed = replay(config, path, echo=lambda _m: None, step=step)
    seconds = time.monotonic() - began
    versions = len(commits_of(open_table(replayed, "day_cost")))
    feed.delete_topic(replayed)
    shutil.rmtree(config.lake, ignore_errors=True)
    return {"seconds": round(seconds, 2), "day_cost_versions": versions,
            "cpu_s": round(env.cpu_seconds_between(cpu0, env.cpu_snapshot(bench.spark)), 1),
            "load_1m": env.load_average()[0]}


def measure(bench: Any) -> dict[str, Any]:
    """The phase (bench.run.Bench.phase_steps)."""
    path, count = feed.readings_file(bench.data, bench.plan.month)
    res: dict[str, Any] = {"input": feed.spec_label(bench.plan.month, count), "readings": count,
                           "step": "1h", "plain": [], "stepped": []}
    for i in range(bench.plan.reps):
        bench.note(f"steps: the month replayed plainly {i + 1}/{bench.plan.reps}")
        res["plain"].append(_replay(bench, f"steps-plain-{i}", path, None))
        bench.note(f"steps: the month replayed in hourly steps {i + 1}/{bench.plan.reps}")
        res["stepped"].append(_replay(bench, f"steps-1h-{i}", path, STEP))
    plain = statistics.median(r["seconds"] for r in res["plain"])
    stepped = statistics.median(r["seconds"] for r in res["stepped"])
    res.update(plain_median_s=round(plain, 2), stepped_median_s=round(stepped, 2),
               ratio=round(stepped / plain, 2))
    return res


def summary_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's row (same fields as bench.run.summary_rows)."""
    s = out.get("steps")
    if not s or "ratio" not in s:
        return []
    versions = s["stepped"][0]["day_cost_versions"] - 1  # the first version creates it
    note = (f"median of {len(s['stepped'])}; {s['readings']:,} readings; {versions} versions "
            f"of each gold table with --step 1h (1 plain)")
    return [{"metric": "month replayed with --step 1h vs a plain replay",
             "value": s["stepped_median_s"], "unit": "s", "baseline": s["plain_median_s"],
             "ratio": s["ratio"], "target": "<= 2.0x", "met": s["ratio"] <= 2.0, "note": note,
             "id": "step_replay_vs_plain"}]
