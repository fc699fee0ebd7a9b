"""A served app keeps its start-up heap out of full garbage collections (gc.freeze), unless
told not to. Run in a process of its own: a frozen heap would outlive the test here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config.settings import Settings

SERVE_AND_COUNT = """
import asyncio, gc, sys
from devtools.servers import running_server
from devtools.stores import StoreUrls

async def main():
    write, read, redis, prefix, freeze = sys.argv[1:6]
    settings = StoreUrls(write, read, redis, prefix).settings(
        gc_freeze=freeze == "true", pipeline_process=False
    )
    before = gc.get_freeze_count()
    async with running_server(settings):
        print(before, gc.get_freeze_count())

asyncio.run(main())
"""


@pytest.mark.parametrize("freeze", [True, False])
def test_the_start_up_heap_is_frozen_once_serving(settings: Settings, freeze: bool) -> None:
    stores = [settings.database_url, settings.read_database_url, settings.redis_url]
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_COUNT, *map(str, stores), settings.redis_prefix,
         str(freeze).lower()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    before, serving = map(int, done.stdout.split())
    assert before == 0
    if freeze:
        assert serving > 10_000  # the schema, rules, plans and pools at least
    else:
        assert serving == 0
