"""Ports and processes on this machine, for the local broker, the local Spark cluster,
the bench and the tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick); closed again when returned."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])  # typed Any: the address depends on the family


def port_open(host: str, port: int) -> bool:
    """Does something accept TCP connections on host:port (within half a second)?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    """Is process `pid` running (a zombie, an exited child not yet reaped, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def children(pid: int) -> list[int]:
    """All descendants of pid (from /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
