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


async def cancel_and_wait(task: asyncio.Task[Any], nudge_s: float = 1.0) -> None:
    """Cancel a task and wait until it has ended, cancelling it again every `nudge_s` in
    case a library it was inside swallowed the first request."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=nudge_s)
    if not task.cancelled():
        task.exception()  # retrieved: an error on the way out is not worth a warning here
