"""Loopback ports: a free one, whether one is free, whether something listens on one."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def bindable(port: int, host: str = LOOPBACK) -> bool:
    """Whether this process could listen on the port now."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def listening(host: str, port: int) -> bool:
    """Whether a server accepts connections on the port (within 2 s)."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True
