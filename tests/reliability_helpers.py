"""Helpers for the tests that run the pipeline and read its lake back (tests/reliability/,
and the end-to-end ones); no fixtures here. Kafka, readings files and messages:
tests/helpers.py.

The lake is read back with delta-rs through DuckDB (`meterlake.read.connection.connect`),
never with Spark, so the checks work while another process writes and do not
depend on the JVM's or Python's time zone. Pipelines that must be killed,
locked out or run under another TZ run as `python -m meterlake` subprocesses,
each in its own process group so that the JVM dies with its Python driver.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from meterlake.core.config import PROJECT_ROOT, Config
from meterlake.read.connection import connect
from oracle import OracleResult
from tests.helpers import TOLERANCE

ANSWER_KEYS = {  # the four answers: sums of the silver pieces
    "month_energy": (["sensor_id", "month"], "energy_kwh"),
    "day_energy": (["sensor_id", "day"], "energy_kwh"),
    "halfhour_energy": (["sensor_id", "period_start"], "energy_kwh"),
    "day_cost": (["sensor_id", "day"], "cost_eur"),
}
GOLD_KEYS = {**ANSWER_KEYS, "month_plan_cost": (["sensor_id", "month", "plan"], "cost_eur")}
PIECE_KEY = ["sensor_id", "interval_start", "interval_end", "period_start", "sign"]
FAST_STREAMS = {  # live-mode triggers short enough for a test
    "bronze": "1 second",
    "silver": "2 seconds",
    "gold": "3 seconds",
}


# --------------------------------------------------------------------------- the lake


def frame(config: Config, sql: str, tables: Sequence[str]) -> pd.DataFrame:
    con = connect(config, tables=list(tables))
    try:
        return con.sql(sql).df()
    finally:
        con.close()


def gold(config: Config, table: str) -> pd.DataFrame:
    keys, value = GOLD_KEYS[table]
    got = frame(config, f"SELECT {', '.join(keys)}, {value}, as_of FROM {table}", [table])
    return got.sort_values(keys).reset_index(drop=True)


def gold_tables(config: Config) -> dict[str, list[tuple]]:
    """All four gold tables as sorted rows (instants in UTC), values rounded to 1e-9."""
    out = {}
    for table, (keys, value) in GOLD_KEYS.items():
        got = gold(config, table)
        got[value] = got[value].round(9)
        for column in ("period_start", "as_of"):
            if column in got:
                got[column] = pd.to_datetime(got[column], utc=True)
        out[table] = [tuple(row) for row in got.itertuples(index=False, name=None)]
    return out


def assert_gold_equals_oracle(config: Config, oracle: OracleResult) -> None:
    for table, (keys, value) in GOLD_KEYS.items():
        got = gold(config, table)
        assert not got.duplicated(keys).any(), f"{table}: a key twice"
        want = getattr(oracle, table).sort_values(keys).reset_index(drop=True)
        for column in ("period_start",):
            if column in keys:
                got[column] = pd.to_datetime(got[column], utc=True)
                want[column] = pd.to_datetime(want[column], utc=True)
        merged = got.merge(want, on=keys, how="outer", suffixes=("", "_oracle"), indicator=True)
        missing = merged[merged["_merge"] != "both"]
        assert missing.empty, f"{table}: keys differ\n{missing.head(10)}"
        error = (merged[value] - merged[f"{value}_oracle"]).abs()
        assert error.max() <= TOLERANCE, f"{table}: max error {error.max()}"
        if "as_of_oracle" in merged:
            got_as_of = pd.to_datetime(merged["as_of"], utc=True)
            assert (got_as_of == pd.to_datetime(merged["as_of_oracle"], utc=True)).all(), table


def bronze_coordinates(config: Config) -> pd.DataFrame:
    return frame(config, 'SELECT topic, "partition", "offset", value FROM bronze', ["bronze"])


def assert_bronze_is_one_row_per_offset(config: Config, ends: dict[int, int]) -> int:
    """Bronze holds every offset of the topic (from 0 to the end) exactly once."""
    got = bronze_coordinates(config)
    assert not got.duplicated(["partition", "offset"]).any(), "an offset twice in bronze"
    for partition, end in ends.items():
        offsets = sorted(got.loc[got["partition"] == partition, "offset"])
        assert offsets == list(range(end)), f"partition {partition}: offsets missing"
    return len(got)


def assert_no_duplicate_piece(config: Config) -> int:
    pieces = frame(config, f"SELECT {', '.join(PIECE_KEY)} FROM silver", ["silver"])
    dup = pieces[pieces.duplicated(PIECE_KEY, keep=False)]
    assert dup.empty, f"duplicate pieces in silver:\n{dup.head(10)}"
    return len(pieces)


# --------------------------------------------------------------------------- subprocesses


def conf_text(config: Config, streams: dict[str, str] | None = None, **sections: dict) -> str:
    """A meterlake.toml for a subprocess: this config's lake, Kafka and Spark settings."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return json.dumps(str(v))

    data: dict[str, dict] = {
        "lake": {"root": str(config.lake)},
        "kafka": {
            "bootstrap": config.kafka.bootstrap,
            "topic": config.kafka.topic,
            "partitions": config.kafka.partitions,
        },
        "spark": {
            "master": config.spark.master,
            "shuffle_partitions": config.spark.shuffle_partitions,
            "driver_memory": "1g",
        },
        "streams": {**(streams or {})},
        "semantics": {"zone": config.semantics.zone, "tariff": str(config.semantics.tariff)},
    }
    for name, settings in sections.items():
        data.setdefault(name, {}).update(settings)
    out = []
    for name, settings in data.items():
        out.append(f"[{name.replace('__', '.')}]")
        out += [f"{json.dumps(k) if '.' in k else k} = {value(v)}" for k, v in settings.items()]
    return "\n".join(out) + "\n"


def write_conf(path: Path, config: Config, streams: dict[str, str] | None = None, **sections):
    path.write_text(conf_text(config, streams, **sections))
    return path


def meterlake_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's shell: none of meterlake's settings, and not the
    Spark launch arguments this test process's own session put there (they would
    fix the subprocess's log4j file, whatever its `-v`)."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("METERLAKE_") and k != "PYSPARK_SUBMIT_ARGS"
    }
    env.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONUNBUFFERED="1", **(extra or {}))
    return env


def cli(
    args: Sequence[str],
    conf: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`python -m meterlake --conf CONF ARGS...`, waited for."""
    return subprocess.run(
        [sys.executable, "-m", "meterlake", "--conf", str(conf), *args],
        capture_output=True,
        text=True,
        env=meterlake_env(env),
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
    )


@dataclass
class Live:
    """A `meterlake run` (live) subprocess in its own process group."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_running(self, timeout: float = 300) -> float:
        """Seconds until the streams run; AssertionError if the process died first."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if "Ctrl-C stops" in self.output():
                return time.monotonic() - started
            if self.process.poll() is not None:
                raise AssertionError(f"meterlake run exited early:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(
            f"meterlake run not running after {timeout} s:\n{self.output()[-3000:]}")

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C: the queries stop cleanly."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9 of the driver: the Python process and its JVM, at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def live(
    conf: Path,
    log: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    module: str = "meterlake",
) -> Iterator[Live]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--conf", str(conf), "run", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=meterlake_env(env),
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    running = Live(process, log)
    try:
        yield running
    finally:
        running.kill()


def with_lake(config: Config, lake: Path, topic: str | None = None) -> Config:
    kafka = replace(config.kafka, topic=topic) if topic else config.kafka
    return replace(config, lake=lake, kafka=kafka)


# --------------------------------------------------------------------------- crashes


def commit_file(table: Path, version: int) -> Path:
    return table / "_delta_log" / f"{version:020d}.json"


def latest_version(table: Path) -> int:
    """A Delta table's latest version from its log files; -1 before the table exists."""
    log = table / "_delta_log"
    return max((int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()), default=-1)


def delta_commit(table: Path, version: int) -> tuple[int | None, int]:
    """The batch id a Delta commit recorded (None if none) and how many data files it
    added: every layer records its batch as Delta's transaction, a `txn` action
    (meterlake.core.commits, gold.job)."""
    batch, adds = None, 0
    for line in commit_file(table, version).read_text().splitlines():
        action = json.loads(line)
        if "txn" in action:
            batch = int(action["txn"]["version"])
        adds += "add" in action
    return batch, adds


def delta_txn(table: Path, version: int) -> int | None:
    """The batch id a Delta commit recorded, or None if it recorded none."""
    return delta_commit(table, version)[0]


def txn_versions(table: Path) -> list[int]:
    """The batch ids of a Delta table's commits, in commit order."""
    batches = (delta_txn(table, v) for v in range(latest_version(table) + 1))
    return [b for b in batches if b is not None]


def batch_committed(config: Config, query: str, batch: int) -> bool:
    """True once the query's checkpoint holds batch's commit-log file."""
    return (config.checkpoint(query) / "commits" / str(batch)).exists()


def unfinished_batches(config: Config) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Batches a stopped pipeline wrote to Delta but not to its checkpoint's commit log:
    query -> (batch id, the query's tables that already hold that batch)."""
    from meterlake.core.catalog import QUERY_TABLES

    out = {}
    for query, tables in QUERY_TABLES.items():
        latest = {t: txn_versions(config.table_path(t))[-1:] for t in tables}
        batch = max((v[0] for v in latest.values() if v), default=None)
        if batch is not None and not batch_committed(config, query, batch):
            out[query] = (batch, tuple(t for t, v in latest.items() if v == [batch]))
    return out


class DeltaWatch:
    """The commits of some Delta tables as they appear, read from their logs (a Delta
    commit file appears whole: it is written aside and renamed)."""

    def __init__(self, config: Config, tables: Sequence[str]) -> None:
        self.paths = {table: config.table_path(table) for table in tables}
        self.next = {table: latest_version(path) + 1 for table, path in self.paths.items()}

    def poll(self) -> list[tuple[str, int, int | None, int]]:
        """(table, version, batch id, data files added) of every commit since the last
        poll."""
        new = []
        for table, path in self.paths.items():
            while commit_file(path, self.next[table]).exists():
                new.append((table, self.next[table], *delta_commit(path, self.next[table])))
                self.next[table] += 1
        return new


def kill_broker(conf) -> None:
    """kill -9 of the broker meterlake.infra.broker.start started (its own process group);
    returns once it is gone and its ports are closed."""
    from meterlake.infra import broker

    pid = int((conf.home / "broker.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # reap it when this process started it
    deadline = time.monotonic() + 60
    while broker.status(conf).pid or broker.status(conf).listening:
        assert time.monotonic() < deadline, f"broker {pid} still up after kill -9"
        time.sleep(0.1)


# --------------------------------------------------------------------------- sockets


LISTEN = "0A"  # TCP state in /proc/net/tcp*


def _addr(hex_addr: str) -> str:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:  # four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
        ip = ip.ipv4_mapped or ip  # a dual-stack socket bound to an IPv4 address
    return f"{ip}:{int(port, 16)}"


def listening(pid: int) -> list[str]:
    """The addresses the process listens on (TCP, IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.append(_addr(fields[1]))
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.rsplit(":", 1)[0]).is_loopback
