"""A Spark standalone cluster on loopback: one master and N workers.

Started with the pyspark package's own `bin/spark-class` (SPARK_HOME = the
package folder, so no Spark download), every daemon bound to 127.0.0.1 (its
RPC port and its web UI: SPARK_LOCAL_IP), each in its own process group with
its pid, log and work folder under `home`. Point the pipeline at it with
`[spark] master = "spark://127.0.0.1:<master_port>"`; executors then run on the
workers (the driver ships its jars with spark.jars and its Python, PYSPARK_PYTHON).

For tests and the benchmark; nothing here is needed on a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from meterlake.core.errors import MeterlakeError
from meterlake.core.net import free_port, pid_alive, port_open

# The JVMs of a loopback cluster live minutes: C1 only, as the driver's default.
JIT_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.deploy.name = org.apache.spark.deploy
logger.deploy.level = info
# the executors' log (<work dir>/<app>/<id>/stderr): each task's start and duration
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = info
"""



def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass(frozen=True)
class SparkClusterConf:
    """Where the cluster lives and listens, and how big each worker is."""

    home: Path
    master_port: int
    master_ui_port: int
    worker_ports: tuple[int, ...]
    worker_ui_ports: tuple[int, ...]
    worker_cores: int = 1
    worker_memory: str = "1g"
    daemon_memory: str = "256m"  # the master's and workers' own heap, not executors'
    host: str = "127.0.0.1"
    start_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if not self.worker_ports or len(self.worker_ports) != len(self.worker_ui_ports):
            raise MeterlakeError("a Spark cluster needs two ports (RPC and UI) per worker")

    @staticmethod
    def on_free_ports(home: Path, workers: int = 2, **sizes) -> SparkClusterConf:
        return SparkClusterConf(
            home=home, master_port=free_port(), master_ui_port=free_port(),
            worker_ports=tuple(free_port() for _ in range(workers)),
            worker_ui_ports=tuple(free_port() for _ in range(workers)), **sizes,
        )

    @property
    def url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def daemons(self) -> list[str]:
        return ["master"] + [f"worker{i}" for i in range(1, len(self.worker_ports) + 1)]

    def work_dir(self, worker: int) -> Path:
        return self.home / f"worker{worker}" / "work"

    def executor_settings(self, memory: str = "512m") -> dict[str, str]:
        """Driver-side settings for one executor of worker_cores cores on each worker."""
        return {
            # Kafka partitions prefer the executor that cached their consumer: waiting
            # 3 s for it (the default) only idles the other core here.
            "spark.locality.wait": "0s",
            "spark.executor.memory": memory,
            # C1 only, as the driver ([spark] java_options): executors here live minutes
            "spark.executor.extraJavaOptions": JIT_OPTIONS,
            "spark.executor.cores": str(self.worker_cores),
            "spark.cores.max": str(self.worker_cores * len(self.worker_ports)),
        }


@dataclass
class Daemon:
    name: str
    pid: int
    log: Path
    handle: subprocess.Popen | None = field(default=None, repr=False)


def _env(conf: SparkClusterConf) -> dict[str, str]:
    conf_dir = conf.home / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(LOG4J2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_CONF_DIR=str(conf_dir.resolve()),
        SPARK_LOCAL_IP=conf.host,
        SPARK_LOCAL_HOSTNAME=conf.host,
        SPARK_DAEMON_MEMORY=conf.daemon_memory,
        SPARK_DAEMON_JAVA_OPTS=JIT_OPTIONS,
        SPARK_NO_DAEMONIZE="1",
    )
    return env


def _spawn(conf: SparkClusterConf, name: str, args: list[str]) -> Daemon:
    folder = conf.home / name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.out"
    with open(log, "ab") as out:
        handle = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_env(conf), cwd=folder, start_new_session=True,
        )
    (conf.home / f"{name}.pid").write_text(str(handle.pid))
    return Daemon(name, handle.pid, log, handle)


def _master_state(conf: SparkClusterConf) -> dict | None:
    url = f"http://{conf.host}:{conf.master_ui_port}/json/"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def alive_workers(conf: SparkClusterConf) -> int:
    state = _master_state(conf) or {}
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def applications(conf: SparkClusterConf) -> list[dict]:
    """Running and completed applications, as the master's JSON page lists them."""
    state = _master_state(conf) or {}
    return list(state.get("activeapps", [])) + list(state.get("completedapps", []))


def pids(conf: SparkClusterConf) -> list[int]:
    """The daemons' pids (master, workers) that are alive."""
    found = []
    for name in conf.daemons:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int((conf.home / f"{name}.pid").read_text())
            if pid_alive(pid):
                found.append(pid)
    return found


def start(conf: SparkClusterConf) -> list[Daemon]:
    """Start the master, then the workers; return once every worker is registered.
    On failure whatever was started is stopped before the error is raised."""
    ports = [conf.master_port, conf.master_ui_port, *conf.worker_ports, *conf.worker_ui_ports]
    taken = [p for p in ports if port_open(conf.host, p)]
    if taken:
        raise MeterlakeError(f"Spark cluster: port(s) {taken} on {conf.host} already taken")
    conf.home.mkdir(parents=True, exist_ok=True)
    daemons = []
    try:
        daemons.append(_spawn(conf, "master", [
            "org.apache.spark.deploy.master.Master", "--host", conf.host,
            "--port", str(conf.master_port), "--webui-port", str(conf.master_ui_port),
        ]))
        for i, (port, ui) in enumerate(zip(conf.worker_ports, conf.worker_ui_ports), start=1):
            conf.work_dir(i).mkdir(parents=True, exist_ok=True)
            daemons.append(_spawn(conf, f"worker{i}", [
                "org.apache.spark.deploy.worker.Worker", conf.url, "--host", conf.host,
                "--port", str(port), "--webui-port", str(ui),
                "--cores", str(conf.worker_cores), "--memory", conf.worker_memory,
                "--work-dir", str(conf.work_dir(i).resolve()),
            ]))
        _wait_registered(conf, daemons)
    except BaseException:
        stop(conf)
        raise
    return daemons


def _wait_registered(conf: SparkClusterConf, daemons: list[Daemon]) -> None:
    deadline = time.monotonic() + conf.start_timeout_s
    while time.monotonic() < deadline:
        for daemon in daemons:
            if daemon.handle is not None and daemon.handle.poll() is not None:
                tail = daemon.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise MeterlakeError(f"Spark {daemon.name} exited at start: {' | '.join(tail)}")
        if alive_workers(conf) >= len(conf.worker_ports):
            return
        time.sleep(0.5)
    raise MeterlakeError(
        f"Spark cluster: {alive_workers(conf)} of {len(conf.worker_ports)} workers registered "
        f"with {conf.url} after {conf.start_timeout_s:.0f} s; see {conf.home}/*/*.out"
    )


def stop(conf: SparkClusterConf, timeout_s: float = 30.0) -> int:
    """Stop the workers (and their executors: each daemon's whole process group), then
    the master; SIGKILL what is left after timeout_s. How many daemons were running."""
    running = [(name, pid) for name in reversed(conf.daemons)
               if (pid := _daemon_pid(conf, name)) is not None]
    for _, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_group_members(pid) for _, pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
        (conf.home / f"{name}.pid").unlink(missing_ok=True)
    return len(running)


def _daemon_pid(conf: SparkClusterConf, name: str) -> int | None:
    try:
        pid = int((conf.home / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


@contextlib.contextmanager
def running(conf: SparkClusterConf) -> Iterator[list[Daemon]]:
    """The cluster for the duration of a with block; stopped however the block ends."""
    daemons = start(conf)
    try:
        yield daemons
    finally:
        stop(conf)
