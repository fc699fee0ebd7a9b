"""EmbeddedServers: PostgreSQL and Redis under one data folder, shared by the processes using it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from app.embedded.lease import Lease
from app.embedded.postgres import Postgres
from app.embedded.redis import Redis
from app.embedded.system import EmbeddedError, logger, socket_dir_for


@dataclass(frozen=True)
class EmbeddedUrls:
    """Where the embedded servers listen; None for a server that was not requested."""

    write_database_url: str | None
    read_database_url: str | None
    redis_url: str | None


class EmbeddedServers:
    """Starts or reuses the servers under `data_dir`; stops them when the last user leaves."""

    def __init__(
        self,
        data_dir: Path,
        *,
        postgres: bool = True,
        redis: bool = True,
        databases: tuple[str, str] = ("shop", "shop_read"),
    ) -> None:
        self._data_dir = Path(data_dir).expanduser().resolve()
        self._want_postgres = postgres
        self._want_redis = redis
        self._databases = databases
        socket_dir = socket_dir_for(self._data_dir)
        self._postgres = Postgres(self._data_dir, socket_dir)
        self._redis = Redis(self._data_dir, socket_dir)
        self._lease = Lease(self._data_dir)

    @property
    def postgres_bin(self) -> Path:
        """The folder with psql, pg_dump and the other PostgreSQL programs."""
        return self._postgres.bin

    def start(self) -> EmbeddedUrls:
        """Start or reuse the requested servers, create the databases, and return their URLs."""
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            with self._lease.transition():
                try:
                    self._ensure_servers()
                except BaseException:
                    if not self._lease.joined:
                        self._stop_after_failed_start()
                    raise
                self._lease.join()
        except OSError as error:
            raise EmbeddedError(f"embedded servers in {self._data_dir}: {error}") from error
        return self._urls()

    def _stop_after_failed_start(self) -> None:
        try:
            self._stop_if_unused()
        except (EmbeddedError, OSError) as error:  # keep the start failure as the one raised
            logger.warning("could not stop the embedded servers after a failed start: %s", error)

    def _ensure_servers(self) -> None:
        if self._want_postgres:
            self._postgres.ensure_running()
            self._postgres.create_databases(self._databases)
        if self._want_redis:
            self._redis.ensure_running()

    def _urls(self) -> EmbeddedUrls:
        write, read = self._databases
        return EmbeddedUrls(
            write_database_url=self._postgres.url(write) if self._want_postgres else None,
            read_database_url=self._postgres.url(read) if self._want_postgres else None,
            redis_url=self._redis.url if self._want_redis else None,
        )

    def stop(self) -> None:
        """Release this process's use; stop the servers if no other live process uses them."""
        if not self._lease.joined:
            return
        try:
            with self._lease.transition():
                self._lease.leave()
                self._stop_if_unused()
        except OSError as error:
            raise EmbeddedError(f"embedded servers in {self._data_dir}: {error}") from error
        finally:
            self._lease.leave()

    def _stop_if_unused(self) -> None:
        with self._lease.unused() as unused:
            if not unused:
                logger.info(
                    "embedded servers in %s still used by another process; leaving them running",
                    self._data_dir,
                )
                return
            errors: list[EmbeddedError] = []
            # Stop both even if only one was requested: nobody else uses either.
            for server in (self._redis, self._postgres):
                try:
                    server.stop()
                except EmbeddedError as error:
                    errors.append(error)
            if errors:
                raise errors[0]

    def __enter__(self) -> EmbeddedUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
