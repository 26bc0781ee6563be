"""The local Apache Kafka broker: one KRaft node (broker + controller) on loopback.

Runs `kafka.Kafka` from the jars `make setup` copied from Maven Central into
.jars/kafka. Data, config, log and pid live under the configured home folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from meterlake.config import BrokerConf
from meterlake.errors import MeterlakeError
from meterlake.session import JARS_DIR

log = logging.getLogger(__name__)

LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


@dataclass(frozen=True)
class BrokerStatus:
    pid: int | None
    listening: bool
    address: str

    def describe(self) -> str:
        if self.pid and self.listening:
            return f"kafka broker running (pid {self.pid}) on {self.address}"
        if self.pid:
            return f"kafka broker process {self.pid} is up but {self.address} does not answer"
        if self.listening:
            return f"no meterlake broker, but something else listens on {self.address}"
        return f"kafka broker stopped ({self.address})"


def server_properties(conf: BrokerConf) -> str:
    home = conf.home.resolve()
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={conf.host}:{conf.controller_port}
listeners=PLAINTEXT://{conf.host}:{conf.port},CONTROLLER://{conf.host}:{conf.controller_port}
advertised.listeners=PLAINTEXT://{conf.host}:{conf.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={home / "data"}
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=-1
"""


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _read_pid(conf: BrokerConf) -> int | None:
    pid_file = conf.home / "broker.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def status(conf: BrokerConf) -> BrokerStatus:
    return BrokerStatus(
        pid=_read_pid(conf),
        listening=_port_open(conf.host, conf.port),
        address=f"{conf.host}:{conf.port}",
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise MeterlakeError("java not found: install Java 17 (or set JAVA_HOME)")
    return java


def _classpath() -> str:
    jars = JARS_DIR / "kafka"
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise MeterlakeError(f"Kafka jars missing in {jars}: run `make setup`")
    return str(jars / "*")


def _run_tool(conf: BrokerConf, *args: str) -> str:
    result = subprocess.run(
        [_java(), "-cp", _classpath(), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MeterlakeError(f"kafka storage tool failed: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def _format_storage(conf: BrokerConf, properties: Path) -> None:
    if (conf.home / "data" / "meta.properties").exists():
        return
    cluster_id = _run_tool(conf, "kafka.tools.StorageTool", "random-uuid").splitlines()[-1]
    _run_tool(
        conf,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "--cluster-id",
        cluster_id,
        "--config",
        str(properties),
    )
    log.info("formatted Kafka storage in %s (cluster %s)", conf.home / "data", cluster_id)


def start(conf: BrokerConf) -> BrokerStatus:
    """Start the broker unless it runs; return once it accepts clients."""
    current = status(conf)
    if current.pid and current.listening:
        return current
    if current.pid:
        return _wait_ready(conf, current.pid, subprocess_handle=None)
    for port in (conf.port, conf.controller_port):
        if _port_open(conf.host, port):
            raise MeterlakeError(
                f"port {conf.host}:{port} is taken by another process; "
                "stop it or set [broker] port/controller_port"
            )
    java = _java()
    classpath = _classpath()
    conf.home.mkdir(parents=True, exist_ok=True)
    properties = conf.home / "server.properties"
    properties.write_text(server_properties(conf))
    log4j = conf.home / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=(conf.home / "server.log").resolve()))
    _format_storage(conf, properties)
    out = open(conf.home / "broker.out", "ab")
    handle = subprocess.Popen(
        [
            java,
            f"-Xmx{conf.heap}",
            f"-Xms{conf.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log4j.resolve()}",
            "-Djava.awt.headless=true",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties.resolve()),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out.close()
    (conf.home / "broker.pid").write_text(str(handle.pid))
    return _wait_ready(conf, handle.pid, handle)


def _wait_ready(
    conf: BrokerConf, pid: int, subprocess_handle: subprocess.Popen | None
) -> BrokerStatus:
    deadline = time.monotonic() + conf.start_timeout_s
    while time.monotonic() < deadline:
        if subprocess_handle is not None and subprocess_handle.poll() is not None:
            tail = (conf.home / "broker.out").read_text(errors="replace").strip().splitlines()[-3:]
            raise MeterlakeError(f"kafka broker exited at start: {' | '.join(tail)}")
        if _port_open(conf.host, conf.port) and _accepts_clients(conf):
            return status(conf)
        time.sleep(0.3)
    raise MeterlakeError(
        f"kafka broker (pid {pid}) did not accept clients on {conf.host}:{conf.port} "
        f"within {conf.start_timeout_s:.0f} s; see {conf.home / 'server.log'}"
    )


def _accepts_clients(conf: BrokerConf) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"{conf.host}:{conf.port}",
            request_timeout_ms=3000,
            client_id="meterlake-probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def stop(conf: BrokerConf, timeout_s: float = 30.0) -> bool:
    """Stop the broker cleanly (SIGTERM, then SIGKILL); True if one was running."""
    pid = _read_pid(conf)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.1)
    while _port_open(conf.host, conf.port) or _port_open(conf.host, conf.controller_port):
        if time.monotonic() > deadline + 10:
            break
        time.sleep(0.1)
    (conf.home / "broker.pid").unlink(missing_ok=True)
    return True
