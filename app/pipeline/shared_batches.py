"""Group commit: a worker's partition consumers of one projection apply their batches together.

Each partition has its own consumer, and below full load each reads one or two events at a
time: every event then paid for a transaction of its own (begin, the guard, the upserts, the
guard's advance, commit), which was most of a worker's CPU. Here the consumers of one
projection take turns: whoever finds no transaction running leads one at once, with its own
batch; batches that arrive meanwhile wait and go together in the next. Nothing waits for a
batch to fill, so one event alone is applied as soon as it comes, and under load the batches
grow by themselves.

Each consumer still reads, acknowledges and announces its own partition, and submits its next
batch only after the last one committed, so an aggregate's events (one partition) stay in
order. A combined batch that fails is not retried as a whole: every consumer applies its own
batch alone, as before, and finds its own error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from app.pipeline.applier import BatchResult, Delivery, apply_batch
from app.projections.base import Projection


class _Lead:
    """Handed to a waiting batch: no transaction is running; lead the next one."""


_LEAD = _Lead()
Outcome = BatchResult | _Lead | None


@dataclass(eq=False)
class _Batch:
    deliveries: Sequence[Delivery]
    outcome: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    taken: bool = False


class SharedBatches:
    """The turn-taking of one projection's consumers in one worker."""

    def __init__(self, projection: Projection, engine: AsyncEngine) -> None:
        self.projection = projection
        self.engine = engine
        self._waiting: list[_Batch] = []
        self._busy = False

    async def apply(self, deliveries: Sequence[Delivery]) -> BatchResult | None:
        """Apply `deliveries` with what other consumers submit meanwhile, in one transaction.

        Returns the result if it committed (the whole transaction's changed keys go to one of
        its consumers, which announces them), or None if a combined batch failed: then apply
        this batch alone. A batch that was alone in its transaction raises what it raised."""
        batch = _Batch(deliveries)
        self._waiting.append(batch)
        if self._busy:
            outcome = await self._follow(batch)
            if not isinstance(outcome, _Lead):
                return outcome
        self._busy = True
        return await self._lead(batch)

    async def _follow(self, batch: _Batch) -> Outcome:
        try:
            return await asyncio.shield(batch.outcome)
        except asyncio.CancelledError:
            if not batch.taken:
                self._waiting.remove(batch)
            elif not batch.outcome.done():
                # Its events are being written: end only once that transaction has, so the
                # partition's lease is given back after its last write, as for a lone batch.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([batch.outcome])
            if batch.outcome.done() and isinstance(batch.outcome.result(), _Lead):
                self._hand_over()
            raise

    async def _lead(self, own: _Batch) -> BatchResult | None:
        taken, self._waiting = self._waiting, []
        for batch in taken:
            batch.taken = True
        others = [batch for batch in taken if batch is not own]
        try:
            result = await self._apply(taken)
        except BaseException as error:
            for batch in others:
                batch.outcome.set_result(None)  # not applied: each applies its own alone
            self._hand_over()
            if not others or not isinstance(error, Exception):
                raise
            return None
        for batch in others:
            batch.outcome.set_result(BatchResult())  # committed; `own` announces the changes
        self._hand_over()
        return result

    async def _apply(self, batches: Sequence[_Batch]) -> BatchResult:
        deliveries = [delivery for batch in batches for delivery in batch.deliveries]
        async with self.engine.begin() as connection:
            return await apply_batch(connection, self.projection, deliveries)

    def _hand_over(self) -> None:
        if self._waiting:
            self._waiting[0].outcome.set_result(_LEAD)
            self._waiting[0].taken = False  # it leads; it is not part of a transaction yet
        else:
            self._busy = False
