"""The local S3-compatible object store: SeaweedFS (`weed server`) on loopback.

`make setup` builds the `weed` binary from the Go module proxy into .tools/bin
(Apache-2.0; its S3 gateway honours `If-None-Match: *`, so delta-rs commits with a
conditional put). `start` runs a master, a volume server, a filer and the S3
gateway in one process, with its data, log and pid under the configured home
(`.s3/`), every port on 127.0.0.1; it returns once the gateway answers, with the
bucket created. The gateway has no identities configured, so it takes unsigned
requests: what `[storage]`'s defaults send when no AWS keys are in the environment.

The store's own ports (master, volume, filer, their gRPC, the gateway's gRPC) are
picked free at the first start and kept in <home>/ports.json, so a restart finds
its data where it left it; only the S3 port is a setting (`[s3] port`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from meterlake.core.config import PROJECT_ROOT, ObjectStoreConf
from meterlake.core.errors import MeterlakeError
from meterlake.core.net import free_port, pid_alive, port_open

log = logging.getLogger(__name__)

INTERNAL_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
                  "s3.grpc")


def weed_binary() -> Path:
    """The `weed` that `make setup` built: $METERLAKE_WEED, else .tools/bin/weed in the
    source checkout."""
    return Path(os.environ.get("METERLAKE_WEED") or PROJECT_ROOT / ".tools" / "bin" / "weed")


@dataclass(frozen=True)
class StoreStatus:
    pid: int | None
    answering: bool
    address: str

    def describe(self) -> str:
        if self.pid and self.answering:
            return f"s3 store running (pid {self.pid}) on http://{self.address}"
        if self.pid:
            return f"s3 store process {self.pid} is up but http://{self.address} does not answer"
        if self.answering:
            return f"no meterlake s3 store, but something else listens on {self.address}"
        return f"s3 store stopped ({self.address})"


def _read_pid(conf: ObjectStoreConf) -> int | None:
    try:
        pid = int((conf.home / "weed.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def endpoint(conf: ObjectStoreConf) -> str:
    return f"http://{conf.host}:{conf.port}"


def _request(conf: ObjectStoreConf, method: str, path: str = "/") -> int:
    """The HTTP status of an unsigned request to the gateway (0: no answer)."""
    request = urllib.request.Request(endpoint(conf) + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def status(conf: ObjectStoreConf) -> StoreStatus:
    answering = port_open(conf.host, conf.port) and _request(conf, "GET") == 200
    return StoreStatus(_read_pid(conf), answering, f"{conf.host}:{conf.port}")


def _ports(conf: ObjectStoreConf) -> dict[str, int]:
    """The store's internal ports: as the first start picked them, else picked now."""
    saved = conf.home / "ports.json"
    if saved.exists():
        ports = {k: int(v) for k, v in json.loads(saved.read_text()).items()}
        if set(ports) == set(INTERNAL_PORTS):
            return ports
    ports = {}
    for name in INTERNAL_PORTS:
        port = free_port(conf.host)
        while port in ports.values() or port == conf.port:
            port = free_port(conf.host)
        ports[name] = port
    saved.write_text(json.dumps(ports, indent=1))
    return ports


def command(conf: ObjectStoreConf, ports: dict[str, int]) -> list[str]:
    """`weed server` with a master, a volume server, a filer and the S3 gateway, all on
    conf.host; no telemetry, no Iceberg or Lance endpoints, no pause at stop."""
    flags = {
        "dir": str((conf.home / "data").resolve()),
        "ip": conf.host,
        "ip.bind": conf.host,
        "master.port": ports["master"],
        "master.port.grpc": ports["master.grpc"],
        "master.telemetry": "false",
        "master.volumeSizeLimitMB": conf.volume_size_mb,
        # one master: no one to wait for (the default 10 s made every restart wait
        # 10 s for the master's own election)
        "master.electionTimeout": "1s",
        "volume.port": ports["volume"],
        "volume.port.grpc": ports["volume.grpc"],
        "volume.max": 0,  # as many volumes as the disk holds
        "volume.preStopSeconds": 0,
        "filer": "true",
        "filer.port": ports["filer"],
        "filer.port.grpc": ports["filer.grpc"],
        "s3": "true",
        "s3.port": conf.port,
        "s3.port.grpc": ports["s3.grpc"],
        "s3.port.iceberg": 0,
        "s3.port.lance": 0,
        "s3.iam": "false",
    }
    return [str(weed_binary()), "server", *(f"-{k}={v}" for k, v in flags.items())]


def start(conf: ObjectStoreConf) -> StoreStatus:
    """Start the store unless it runs; return once it answers, with the bucket made."""
    current = status(conf)
    if not (current.pid and current.answering):
        if current.answering:
            raise MeterlakeError(
                f"port {conf.host}:{conf.port} answers but is not meterlake's store; "
                "stop it or set [s3] port"
            )
        pid = current.pid or _launch(conf)
        _wait_ready(conf, pid)
    _make_bucket(conf)
    return status(conf)


def _launch(conf: ObjectStoreConf) -> int:
    weed = weed_binary()
    if not weed.exists():
        raise MeterlakeError(f"the s3 store's binary {weed} is missing: run `make setup`")
    if port_open(conf.host, conf.port):
        raise MeterlakeError(f"port {conf.host}:{conf.port} is taken; stop it or set [s3] port")
    (conf.home / "data").mkdir(parents=True, exist_ok=True)
    ports = _ports(conf)
    out = open(conf.home / "weed.log", "ab")
    handle = subprocess.Popen(
        command(conf, ports), cwd=conf.home, stdout=out, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    out.close()
    (conf.home / "weed.pid").write_text(str(handle.pid))
    return handle.pid


def _wait_ready(conf: ObjectStoreConf, pid: int) -> None:
    deadline = time.monotonic() + conf.start_timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            tail = (conf.home / "weed.log").read_text(errors="replace").strip().splitlines()
            raise MeterlakeError(f"s3 store exited at start: {' | '.join(tail[-3:])}")
        # the bucket listing answers once the gateway reaches the filer
        if _request(conf, "GET") == 200:
            return
        time.sleep(0.3)
    raise MeterlakeError(
        f"s3 store (pid {pid}) did not answer on {endpoint(conf)} within "
        f"{conf.start_timeout_s:.0f} s; see {conf.home / 'weed.log'}"
    )


def _make_bucket(conf: ObjectStoreConf) -> None:
    """Create the bucket (a new store takes a few seconds until a volume can hold it)."""
    deadline = time.monotonic() + conf.start_timeout_s
    while True:
        code = _request(conf, "PUT", f"/{conf.bucket}")
        if code in (200, 409):  # made, or there already
            return
        if time.monotonic() > deadline:
            raise MeterlakeError(f"s3 store: creating bucket {conf.bucket} failed (HTTP {code})")
        time.sleep(0.5)


def stop(conf: ObjectStoreConf, timeout_s: float = 3.0) -> bool:
    """Stop the store (SIGTERM, then SIGKILL); True if one was running. SeaweedFS stops
    its volume server before its filer, whose last flush of its change log then waits
    15 s for it in vain: it gets timeout_s. What the store acknowledged is on disk
    (volume files, the filer's LevelDB) whatever ends the process."""
    pid = _read_pid(conf)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
    (conf.home / "weed.pid").unlink(missing_ok=True)
    return True
