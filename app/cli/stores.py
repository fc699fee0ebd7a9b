"""Resolve where the stores are: configured URLs, or embedded servers started for the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from app.adapters.migrations import History
from app.config.settings import Settings
from app.embedded import EmbeddedServers

log = logging.getLogger("app.cli")


@contextmanager
def resolved_stores(
    settings: Settings, *, redis: bool = True
) -> Iterator[tuple[Settings, frozenset[History]]]:
    """Yield settings with every URL filled in, and the histories whose store is embedded.

    Embedded servers are started (or reused) only for what is not configured, and released
    on exit: the last process using them stops them. A command that uses no Redis says so
    (`redis=False`) and starts none.
    """
    needs_postgres = settings.database_url is None or settings.read_database_url is None
    needs_redis = redis and settings.redis_url is None
    if not (needs_postgres or needs_redis):
        yield settings, frozenset()
        return
    servers = EmbeddedServers(settings.data_dir, postgres=needs_postgres, redis=needs_redis)
    urls = servers.start()
    try:
        embedded = frozenset(
            history
            for history, url in (
                (History.WRITE, settings.database_url),
                (History.READ, settings.read_database_url),
            )
            if url is None
        )
        resolved = settings.model_copy(
            update={
                "database_url": settings.database_url or urls.write_database_url,
                "read_database_url": settings.read_database_url or urls.read_database_url,
                "redis_url": settings.redis_url or urls.redis_url,
            }
        )
        log.info("embedded servers under %s", settings.data_dir.resolve())
        yield resolved, embedded
    finally:
        servers.stop()
