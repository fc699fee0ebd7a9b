"""EmbeddedServers against real PostgreSQL and Redis servers: sharing, SIGKILL, stale pid files."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import redis

from app.embedded import EmbeddedError, EmbeddedServers, EmbeddedUrls

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
from app.embedded import EmbeddedServers

servers = EmbeddedServers(Path(sys.argv[1]))
servers.start()
print("started", flush=True)
sys.stdin.readline()
servers.stop()
print("stopped", flush=True)
"""


def server_pids(data_dir: Path) -> tuple[int, int]:
    """The postmaster and redis-server pids named by their pid files."""
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text().strip())
    return postmaster, redis_pid


def alive(pid: int) -> bool:
    """True for a live process; zombies (this container's init does not reap) are dead."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_dead(*pids: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def psql(servers: EmbeddedServers, url: str | None, sql: str) -> str:
    """Run SQL with the bundled psql on a URL as given by EmbeddedUrls."""
    assert url is not None
    result = subprocess.run(
        [servers.postgres_bin / "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def redis_client(urls: EmbeddedUrls) -> redis.Redis:
    assert urls.redis_url is not None
    return redis.Redis.from_url(urls.redis_url)


def write_data(servers: EmbeddedServers, urls: EmbeddedUrls) -> None:
    """A committed row in the write database and a key in Redis."""
    sql = "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('row')"
    psql(servers, urls.write_database_url, sql)
    with redis_client(urls) as client:
        client.set("kept", "value")


def assert_data_intact(servers: EmbeddedServers, urls: EmbeddedUrls) -> None:
    assert psql(servers, urls.write_database_url, "SELECT v FROM kept") == "row"
    with redis_client(urls) as client:
        assert client.get("kept") == b"value"


def read_line(process: subprocess.Popen[str], timeout_s: float = 60) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    assert ready, "the child process said nothing in time"
    return process.stdout.readline().strip()


@contextmanager
def user_process(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process using the servers: it has started them once this yields."""
    log = (data_dir.parent / f"child-{time.monotonic_ns()}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert read_line(process) == "started", Path(log.name).read_text()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        log.close()


def stop_user_process(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("stop\n")
    process.stdin.flush()
    assert read_line(process) == "stopped"
    assert process.wait(timeout=30) == 0


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's base directory: a pytest session starting meanwhile on this machine
    # takes o+x off /tmp/pytest-of-<user>, and the server user could not reach its data.
    prefix = "shop-embedded-test-"
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as folder:
        yield Path(folder) / "data"


def test_start_gives_working_urls_and_stop_stops_both_servers(data_dir: Path) -> None:
    servers = EmbeddedServers(data_dir)
    urls = servers.start()
    try:
        assert psql(servers, urls.write_database_url, "SELECT 1") == "1"
        assert psql(servers, urls.read_database_url, "SELECT current_database()") == "shop_read"
        with redis_client(urls) as client:
            assert client.ping()
        pids = server_pids(data_dir)
        assert servers.start() == urls  # calling start() again just checks and reuses
    finally:
        servers.stop()
    wait_dead(*pids, timeout_s=1)
    servers.stop()  # a second stop is harmless


def test_only_requested_servers_get_urls(data_dir: Path) -> None:
    with EmbeddedServers(data_dir, postgres=False) as urls:
        assert urls.write_database_url is None
        assert urls.read_database_url is None
        with redis_client(urls) as client:
            assert client.ping()
    assert not (data_dir / "postgres").exists()


def test_data_survives_stop_and_start(data_dir: Path) -> None:
    servers = EmbeddedServers(data_dir)
    with servers as urls:
        write_data(servers, urls)
    with servers as urls:
        assert_data_intact(servers, urls)


def test_two_processes_share_one_server_and_the_last_to_stop_stops_it(data_dir: Path) -> None:
    with user_process(data_dir) as child:
        pids = server_pids(data_dir)
        servers = EmbeddedServers(data_dir)
        urls = servers.start()
        assert server_pids(data_dir) == pids
        servers.stop()
        assert all(alive(pid) for pid in pids)
        assert psql(servers, urls.write_database_url, "SELECT 1") == "1"
        stop_user_process(child)
    wait_dead(*pids)


def test_killed_user_process_leaves_servers_that_the_next_start_reuses(data_dir: Path) -> None:
    with user_process(data_dir) as child:
        pids = server_pids(data_dir)
        writer = EmbeddedServers(data_dir)
        with writer as urls:
            write_data(writer, urls)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert all(alive(pid) for pid in pids)
    servers = EmbeddedServers(data_dir)
    urls = servers.start()
    try:
        assert server_pids(data_dir) == pids
        assert_data_intact(servers, urls)
    finally:
        servers.stop()
    wait_dead(*pids)


@pytest.mark.parametrize("stale_pid", ["dead", "reused"])
def test_stale_pid_files_start_fresh_servers_with_data_intact(
    data_dir: Path, stale_pid: str
) -> None:
    servers = EmbeddedServers(data_dir)
    with servers as urls:
        write_data(servers, urls)
        pids = server_pids(data_dir)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_dead(*pids)
        if stale_pid == "reused":  # the kernel gave the pids to unrelated processes
            pidfile = data_dir / "postgres" / "postmaster.pid"
            pidfile.write_text(pidfile.read_text().replace(str(pids[0]), str(os.getpid()), 1))
            (data_dir / "redis" / "redis.pid").write_text(f"{os.getpid()}\n")
        restarted = EmbeddedServers(data_dir)
        with restarted as urls:
            fresh = server_pids(data_dir)
            assert set(fresh).isdisjoint(pids)
            assert_data_intact(restarted, urls)
    wait_dead(*fresh)


def test_long_data_dir_puts_sockets_in_a_short_tmp_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / ("long-folder-name-" * 6) / "data"
    servers = EmbeddedServers(data_dir, redis=False)
    with servers as urls:
        assert urls.write_database_url is not None
        socket_dir = Path(urls.write_database_url.split("host=")[1])
        assert socket_dir.parent == Path("/tmp")
        assert socket_dir.name.startswith("shop-embedded-")
        assert psql(servers, urls.write_database_url, "SELECT 1") == "1"
    socket_dir.rmdir()


def test_failing_initdb_raises_embedded_error_with_its_output(data_dir: Path) -> None:
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "stray-file").write_text("not a database")
    with pytest.raises(EmbeddedError, match=r"initdb in .*postgres failed") as raised:
        EmbeddedServers(data_dir).start()
    assert "not empty" in str(raised.value)
