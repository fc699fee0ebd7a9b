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
    projection: Projection
    deliveries: Sequence[Delivery]
    outcome: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    taken: bool = False


class SharedBatches:
    """The turn-taking of a worker's consumers at the read store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._waiting: list[_Batch] = []
        self._busy = False

    async def apply(
        self, projection: Projection, deliveries: Sequence[Delivery]
    ) -> BatchResult | None:
        """Apply `deliveries` to `projection` with what other consumers submit meanwhile, in
        one transaction.

        Returns the result if it committed (the changed keys of each projection go to one of
        its consumers, which announces them), or None if a combined batch failed: then apply
        this batch alone. A batch that was alone in its transaction raises what it raised."""
        batch = _Batch(projection, deliveries)
        self._waiting.append(batch)
        if self._busy:
            outcome = await self._follow(batch)
            if not isinstance(outcome, _Lead):
                return outcome
        else:
            self._busy = True
            # One step of the event loop: the consumers that one stream entry woke (one per
            # projection) submit theirs first, and all go in this transaction.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._waiting.remove(batch)
                self._hand_over()
                raise
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
            results = await self._apply(taken)
        except BaseException as error:
            for batch in others:
                batch.outcome.set_result(None)  # not applied: each applies its own alone
            self._hand_over()
            if not others or not isinstance(error, Exception):
                raise
            return None
        for batch in others:
            batch.outcome.set_result(results.get(batch, BatchResult()))
        self._hand_over()
        return results.get(own, BatchResult())

    async def _apply(self, batches: Sequence[_Batch]) -> dict[_Batch, BatchResult]:
        """Each projection's batches as one, projections in name order (so two workers'
        transactions take their locks in one order); each projection's result goes to its
        first batch."""
        by_projection: dict[str, list[_Batch]] = {}
        for batch in batches:
            by_projection.setdefault(batch.projection.name, []).append(batch)
        results = {}
        async with self.engine.begin() as connection:
            for name in sorted(by_projection):
                group = by_projection[name]
                deliveries = [delivery for batch in group for delivery in batch.deliveries]
                results[group[0]] = await apply_batch(connection, group[0].projection, deliveries)
        return results

    def _hand_over(self) -> None:
        if self._waiting:
            self._waiting[0].outcome.set_result(_LEAD)
            self._waiting[0].taken = False  # it leads; it is not part of a transaction yet
        else:
            self._busy = False
