"""The local Apache Kafka broker: one KRaft node (broker + controller) on loopback.

Runs `kafka.Kafka` from the jars `make setup` copied from Maven Central into
.jars/kafka. Data, config, log and pid live under the configured home folder.

`start_cluster` / `stop_cluster` run N such nodes (each a broker and a voter of
a static controller quorum) on loopback, for tests and benchmarks that need
replication: node i lives in <home>/node<i> and is a plain BrokerConf there.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from meterlake.core.config import BrokerConf
from meterlake.core.errors import MeterlakeError
from meterlake.core.net import pid_alive, port_open
from meterlake.core.session import jars_dir

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


def server_properties(
    conf: BrokerConf, node_id: int = 1, voters: str | None = None, replication: int = 1
) -> str:
    """One combined node. Alone (voters None): a dynamic quorum of itself. In a cluster:
    a static quorum (voters = "1@host:port,2@host:port,..."), internal topics and new
    topics replicated `replication` times, writes acknowledged by a majority."""
    home = conf.home.resolve()
    quorum = (
        f"controller.quorum.voters={voters}"
        if voters
        else f"controller.quorum.bootstrap.servers={conf.host}:{conf.controller_port}"
    )
    min_isr = replication // 2 + 1
    return f"""\
process.roles=broker,controller
node.id={node_id}
{quorum}
listeners=PLAINTEXT://{conf.host}:{conf.port},CONTROLLER://{conf.host}:{conf.controller_port}
advertised.listeners=PLAINTEXT://{conf.host}:{conf.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={home / "data"}
num.partitions=3
default.replication.factor={replication}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replication}
transaction.state.log.replication.factor={replication}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replication}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=-1
"""


def _read_pid(conf: BrokerConf) -> int | None:
    pid_file = conf.home / "broker.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def status(conf: BrokerConf) -> BrokerStatus:
    return BrokerStatus(
        pid=_read_pid(conf),
        listening=port_open(conf.host, conf.port),
        address=f"{conf.host}:{conf.port}",
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise MeterlakeError("java not found: install Java 17 (or set JAVA_HOME)")
    return java


def _classpath() -> str:
    jars = jars_dir() / "kafka"
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


def _new_cluster_id(conf: BrokerConf) -> str:
    return _run_tool(conf, "kafka.tools.StorageTool", "random-uuid").splitlines()[-1]


def _format_storage(conf: BrokerConf, properties: Path, cluster_id: str | None = None) -> None:
    """Format the log directory once: alone (a new id, --standalone), or as one node of
    the static quorum of cluster_id."""
    if (conf.home / "data" / "meta.properties").exists():
        return
    alone = cluster_id is None
    cluster_id = cluster_id or _new_cluster_id(conf)
    _run_tool(
        conf,
        "kafka.tools.StorageTool",
        "format",
        *(["--standalone"] if alone else []),
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
    _check_ports_free(conf)
    handle = _launch(conf, server_properties(conf))
    return _wait_ready(conf, handle.pid, handle)


def _check_ports_free(conf: BrokerConf) -> None:
    for port in (conf.port, conf.controller_port):
        if port_open(conf.host, port):
            raise MeterlakeError(
                f"port {conf.host}:{port} is taken by another process; "
                "stop it or set [broker] port/controller_port"
            )


def _launch(conf: BrokerConf, properties_text: str, cluster_id: str | None = None):
    """Write the node's config, format its storage, start `kafka.Kafka` (not waited for)."""
    java = _java()
    classpath = _classpath()
    conf.home.mkdir(parents=True, exist_ok=True)
    properties = conf.home / "server.properties"
    properties.write_text(properties_text)
    log4j = conf.home / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=(conf.home / "server.log").resolve()))
    _format_storage(conf, properties, cluster_id)
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
    return handle


def _wait_ready(
    conf: BrokerConf, pid: int, subprocess_handle: subprocess.Popen | None, brokers: int = 1
) -> BrokerStatus:
    deadline = time.monotonic() + conf.start_timeout_s
    while time.monotonic() < deadline:
        if subprocess_handle is not None and subprocess_handle.poll() is not None:
            tail = (conf.home / "broker.out").read_text(errors="replace").strip().splitlines()[-3:]
            raise MeterlakeError(f"kafka broker exited at start: {' | '.join(tail)}")
        if port_open(conf.host, conf.port) and _accepts_clients(conf, brokers):
            return status(conf)
        time.sleep(0.3)
    raise MeterlakeError(
        f"kafka broker (pid {pid}) did not accept clients on {conf.host}:{conf.port} "
        f"within {conf.start_timeout_s:.0f} s; see {conf.home / 'server.log'}"
    )


def _accepts_clients(conf: BrokerConf, brokers: int = 1) -> bool:
    """The node answers an admin client and knows at least `brokers` live brokers."""
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
        live = [b for b in admin.describe_cluster().get("brokers", []) if not b.get("is_fenced")]
        return len(live) >= brokers
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def stop(conf: BrokerConf, timeout_s: float = 30.0) -> bool:
    """Stop the broker cleanly (SIGTERM, then SIGKILL); True if one was running."""
    return _stop_nodes([conf], timeout_s) > 0


def _stop_nodes(nodes: list[BrokerConf], timeout_s: float) -> int:
    """SIGTERM every running node at once (a quorum stops together rather than losing
    its majority one node at a time), SIGKILL what is left after timeout_s; the number
    of nodes that were running."""
    pids = {node: pid for node in nodes if (pid := _read_pid(node)) is not None}
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids.values():
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
    for node in pids:
        while port_open(node.host, node.port) or port_open(node.host, node.controller_port):
            if time.monotonic() > deadline + 10:
                break
            time.sleep(0.1)
        (node.home / "broker.pid").unlink(missing_ok=True)
    return len(pids)


# --------------------------------------------------------------------------- N nodes


@dataclass(frozen=True)
class ClusterConf:
    """N combined KRaft nodes on loopback; node i (from 1) listens on ports[i-1] for
    clients and controller_ports[i-1] for the quorum, with its data in <home>/node<i>."""

    home: Path
    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]
    host: str = "127.0.0.1"
    heap: str = "384m"
    start_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if not self.ports or len(self.ports) != len(self.controller_ports):
            raise MeterlakeError("a Kafka cluster needs one client and one controller port a node")

    @property
    def nodes(self) -> list[BrokerConf]:
        return [
            BrokerConf(
                home=self.home / f"node{i}", host=self.host, port=port, controller_port=cport,
                heap=self.heap, start_timeout_s=self.start_timeout_s,
            )
            for i, (port, cport) in enumerate(zip(self.ports, self.controller_ports), start=1)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.ports)

    @property
    def voters(self) -> str:
        return ",".join(
            f"{i}@{self.host}:{port}" for i, port in enumerate(self.controller_ports, start=1)
        )


def start_cluster(cluster: ClusterConf) -> list[BrokerStatus]:
    """Start every node, then return once each one sees all N brokers; on failure the
    nodes already started are stopped before the error is raised."""
    nodes = cluster.nodes
    if all(status(n).pid and status(n).listening for n in nodes):
        return [status(n) for n in nodes]
    for node in nodes:
        _check_ports_free(node)
    handles = []
    try:
        cluster_id = _new_cluster_id(nodes[0])
        for i, node in enumerate(nodes, start=1):
            text = server_properties(node, i, cluster.voters, len(nodes))
            handles.append(_launch(node, text, cluster_id))
        for node, handle in zip(nodes, handles):
            _wait_ready(node, handle.pid, handle, brokers=len(nodes))
    except BaseException:
        _stop_nodes(nodes, 30.0)
        raise
    return [status(n) for n in nodes]


def stop_cluster(cluster: ClusterConf, timeout_s: float = 30.0) -> int:
    """Stop every node; how many were running."""
    return _stop_nodes(cluster.nodes, timeout_s)


def cluster_pids(cluster: ClusterConf) -> list[int]:
    return [pid for node in cluster.nodes if (pid := _read_pid(node)) is not None]


def create_topic(bootstrap: str, topic: str, partitions: int, replication: int) -> dict:
    """Create a replicated topic and return its layout once every partition has a leader
    and its full ISR: {partition: (leader, replicas, in-sync replicas)}."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="meterlake-admin",
                             request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, partitions, replication)], timeout_ms=30_000)
        deadline = time.monotonic() + 60
        while True:
            described = admin.describe_topics([topic])[0]["partitions"]
            layout = {
                p["partition_index"]: (p["leader_id"], sorted(p["replica_nodes"]),
                                       sorted(p["isr_nodes"]))
                for p in described
            }
            complete = len(layout) == partitions and all(
                leader >= 0 and len(isr) == replication for leader, _, isr in layout.values()
            )
            if complete or time.monotonic() > deadline:
                return layout
            time.sleep(0.5)
    finally:
        admin.close()
