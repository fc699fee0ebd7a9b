"""`shop serve` on the embedded default, as a user runs it: subprocesses, signals, kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from app.embedded import EmbeddedServers
from devtools.ports import free_port
from devtools.processes import ShopProcesses, environment_without_settings
from devtools.servers import Address, until_answering

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(data_dir: Path) -> Iterator[ShopProcesses]:
    """`shop` commands on the embedded default in `data_dir`, each in its own process group as
    a terminal would start it; whatever still runs at the end is killed."""
    processes = ShopProcesses(
        {**environment_without_settings(), "SHOP_DATA_DIR": str(data_dir)}, data_dir.parent
    )
    yield processes
    for name, process in list(processes.processes.items()):
        if process.poll() is None:
            processes.kill(name)


def wait_for_output(shop: ShopProcesses, name: str, text: str, timeout_s: float = 90) -> None:
    """Wait until the process has printed `text`; fail if it exits or takes too long."""
    process, log_path = shop.processes[name], shop.log_path(name)
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_text(errors="replace"):
        assert process.poll() is None, f"exited with {process.returncode}: {log_path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout_s} s: {log_path.read_text()}"
        time.sleep(0.1)


def server_pids(data_dir: Path) -> tuple[int, int]:
    """The postmaster and redis-server pids, read from their pid files."""
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text().strip())
    return postmaster, redis_pid


def postmasters_on(data_dir: Path) -> list[int]:
    """Pids of every PostgreSQL postmaster serving this data folder."""
    pgdata = str((data_dir / "postgres").resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and pgdata in cmdline:
            found.append(process.pid)
    return found


def wait_gone(pid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.1)


async def _sql(url: str, statement: str) -> object:
    connection = await asyncpg.connect(url)
    try:
        if statement.startswith("SELECT"):
            return await connection.fetchval(statement)
        return await connection.execute(statement)
    finally:
        await connection.close()


def with_embedded(
    data_dir: Path, write_sql: str, redis_command: tuple[str, ...]
) -> tuple[object, object]:
    """Use the running embedded servers from the test process (sharing them), then let go."""
    servers = EmbeddedServers(data_dir)
    urls = servers.start()
    try:
        assert urls.write_database_url
        assert urls.redis_url
        row = asyncio.run(_sql(urls.write_database_url, write_sql))
        client = redis.Redis.from_url(urls.redis_url, decode_responses=True)
        try:
            value = client.execute_command(*redis_command)
        finally:
            client.close()
        return row, value
    finally:
        servers.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "shop-data"
    yield path
    # Never leave a server behind a failed test (the `shop` fixture kills the processes).
    leftovers = set(postmasters_on(path))
    with contextlib.suppress(FileNotFoundError, ValueError):
        leftovers.add(int((path / "redis" / "redis.pid").read_text().strip()))
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def healthz_twice_on_one_connection(port: int, idle_s: float) -> tuple[int, int]:
    """The status of GET /healthz, then again on the same connection after it sat idle."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        reader = connection.makefile("rb")
        for pause in (0, idle_s):
            time.sleep(pause)
            connection.sendall(request)
            status_line = reader.readline()
            assert status_line, "the server closed the idle connection"
            statuses.append(int(status_line.split()[1]))
            length = 0
            while (header := reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
    return statuses[0], statuses[1]


def test_serve_survives_kill_9_without_a_second_server(shop: ShopProcesses, data_dir: Path) -> None:
    port = free_port()
    first = shop.start("first", "serve", "--port", str(port))
    asyncio.run(until_answering(first, Address.loopback(port)))
    pids = server_pids(data_dir)
    with_embedded(data_dir, "CREATE TABLE marker AS SELECT 42 AS answer", ("SET", "marker", "42"))

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert all(psutil.pid_exists(pid) for pid in pids)  # orphaned, still serving

    second = shop.start("second", "serve", "--port", str(port))
    asyncio.run(until_answering(second, Address.loopback(port)))
    assert server_pids(data_dir) == pids
    assert postmasters_on(data_dir) == [pids[0]]
    assert with_embedded(data_dir, "SELECT answer FROM marker", ("GET", "marker")) == (42, "42")
    # An idle connection outlives a client's own idle limit (httpx: 5 s), so a client never
    # sends on a connection the server is closing.
    assert healthz_twice_on_one_connection(port, idle_s=6) == (200, 200)

    second.send_signal(signal.SIGINT)  # Ctrl-C
    assert second.wait(30) == 0
    for pid in pids:
        wait_gone(pid)


def test_serve_and_worker_share_one_set_of_servers(shop: ShopProcesses, data_dir: Path) -> None:
    port = free_port()
    serve = shop.start("serve", "serve", "--port", str(port), "--workers", "2")
    asyncio.run(until_answering(serve, Address.loopback(port)))
    worker = shop.start("worker", "worker")
    pids = server_pids(data_dir)
    # Attached to the servers once its loops run; only then may serve leave them to it.
    wait_for_output(shop, "worker", "worker loops running")

    serve.send_signal(signal.SIGTERM)
    serve.wait(30)
    time.sleep(1)
    assert all(psutil.pid_exists(pid) for pid in pids)  # the worker still uses them
    assert postmasters_on(data_dir) == [pids[0]]

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    for pid in pids:
        wait_gone(pid)
