"""Cancellation that survives libraries turning it into their own errors."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any


def reraise_if_cancelling() -> None:
    """Raise CancelledError if this task is being cancelled.

    A cancelled socket read may come back as a client library's connection error; a loop
    that retries such errors must check this, or it would swallow its own cancellation and
    keep a shutting-down process waiting forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def where_stuck(task: asyncio.Task[Any]) -> str:
    """Where a task that will not end is waiting, for the log."""
    frames = task.get_stack()
    return "".join(traceback.format_stack(frames[-1])) if frames else "(no frame)\n"
