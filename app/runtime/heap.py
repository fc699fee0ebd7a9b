"""The start-up heap, kept out of full garbage collections."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("app.runtime.heap")


def freeze_startup_heap() -> None:
    """Move every object alive now (the schema, validation rules, compiled plans, pools: all
    that start-up made and the process keeps) out of the collector's reach. A full
    collection then scans only what serving made since; under load, one over the whole heap
    paused a `shop serve` for about 100 ms every few seconds, most of the p99 of a list
    query (benchmarks/NOTES.md). What is frozen is still freed by reference counting."""
    gc.collect()
    gc.freeze()
    log.debug("%d start-up objects kept out of full collections", gc.get_freeze_count())
