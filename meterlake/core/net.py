"""Loopback ports for the local broker, the local Spark cluster, the bench and the tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick); closed again when returned."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])  # typed Any: the address depends on the family
