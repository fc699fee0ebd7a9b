"""Stopping a background task even when a library it was in swallowed the cancellation."""

from __future__ import annotations

import asyncio

from app.pipeline.cancellation import cancel_and_wait


async def test_a_task_that_swallows_its_first_cancellation_is_stopped_anyway() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a client library turning it into a retry would

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, nudge_s=0.05), 5)
    assert task.cancelled()
    assert swallowed == 1
