"""The machine and the processes being measured: cores, memory, load, versions, RSS."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meterlake.core.net import children
from meterlake.core.sparkinternals import jvm_pid


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _meminfo_mb(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _java_version() -> str:
    try:
        out = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
        return out.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # not installed
        return "not installed"


def kafka_broker_version() -> str:
    from meterlake.core.session import jars_dir

    jars = sorted((jars_dir() / "kafka").glob("kafka_2.13-*.jar"))
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on (load averages are taken separately)."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mb": _meminfo_mb("MemTotal"),
        "memory_available_mb_at_start": _meminfo_mb("MemAvailable"),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "java": _java_version(),
        "versions": {
            name: _version(name)
            for name in (
                "pyspark", "delta-spark", "deltalake", "duckdb", "kafka-python",
                "confluent-kafka", "pyarrow", "pandas",
            )
        },
        "kafka_broker": kafka_broker_version(),
    }


# ---- memory of processes ---------------------------------------------------------------


def proc_status_kb(pid: int, field: str) -> int | None:
    """VmRSS / VmHWM (kB) from /proc/<pid>/status, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def memory_sample(spark) -> dict[str, Any]:
    """Driver memory now: JVM and Python driver RSS and peak (VmHWM), Python workers' RSS."""
    jvm = jvm_pid(spark)
    me = os.getpid()
    workers = [p for p in children(jvm) if p != me]
    mb = lambda kb: None if kb is None else round(kb / 1024, 1)  # noqa: E731
    return {
        "t": round(time.monotonic(), 2),
        "jvm_rss_mb": mb(proc_status_kb(jvm, "VmRSS")),
        "jvm_peak_mb": mb(proc_status_kb(jvm, "VmHWM")),
        "python_rss_mb": mb(proc_status_kb(me, "VmRSS")),
        "python_peak_mb": mb(proc_status_kb(me, "VmHWM")),
        "python_workers": len(workers),
        "python_workers_rss_mb": mb(sum(proc_status_kb(p, "VmRSS") or 0 for p in workers)),
    }


def own_process_run(arguments: list[str], every_s: float = 0.2) -> dict[str, Any]:
    """`meterlake <arguments>` in its own process, as a user runs it: exit code, wall
    seconds and the peak RSS (VmHWM) of its JVM, read from /proc until it exits."""
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "meterlake", *arguments],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while process.poll() is None:
        for pid in children(process.pid):
            try:
                java = Path(f"/proc/{pid}/exe").resolve().name == "java"
            except OSError:
                continue
            if java:
                peak_kb = max(peak_kb, proc_status_kb(pid, "VmHWM") or 0)
        time.sleep(every_s)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    return {
        "exit_code": process.returncode,
        "seconds": round(time.monotonic() - began, 2),
        "jvm_peak_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "stderr_tail": stderr[-500:],
    }


def dir_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return round(total / 1e6, 3)


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (all threads, no children)


def cpu_snapshot(spark) -> dict[int, int]:
    """CPU ticks so far of this process, the JVM and each of its descendants (the Python
    workers), per pid."""
    jvm = jvm_pid(spark)
    pids = {os.getpid(), jvm, *children(jvm)}
    ticks = {pid: cpu_ticks(pid) for pid in pids}
    return {pid: t for pid, t in ticks.items() if t is not None}


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds used between two snapshots by the processes alive at the second one.
    A worker that started and ended in between is missed (an underestimate, never a
    negative figure); workers are reused, so this is rare."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def phase_totals(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per query name: batches with input, rows, and the summed durationMs per phase."""
    out: dict[str, dict[str, Any]] = {}
    for p in events:
        rows = int(p.get("numInputRows", 0))
        if rows == 0:
            continue
        q = out.setdefault(p.get("name") or "?", {"batches": 0, "rows": 0, "ms": {}})
        q["batches"] += 1
        q["rows"] += rows
        for phase, ms in (p.get("durationMs") or {}).items():
            q["ms"][phase] = q["ms"].get(phase, 0) + int(ms)
    return out
