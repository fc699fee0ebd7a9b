"""Group commit: a worker's partition consumers of one projection apply their batches together.

Each partition has its own consumer, and below full load each reads one or two events at a
time: every event then paid for a transaction of its own (begin, the guard, the upserts, the
guard's advance, commit), which was most of a worker's CPU. Here the consumers take turns:
whoever finds a turn free (two statements at once, see TRANSACTIONS) leads one at once, with
its own batch and those submitted in the same step of the event loop; batches that arrive
while both turns are taken wait and go together in the next. Nothing waits for a batch to
fill, so one event alone is applied as soon as it comes, and under load the batches grow by
themselves. The combined batch of every projection is one statement (`apply_at_once`).

Each consumer still reads, acknowledges and announces its own partition, and submits its next
batch only after the last one committed, so an aggregate's events (one partition) stay in
order. What the statement leaves (an aggregate parked, out of order, or written by another
applier meanwhile) each consumer applies alone afterwards. A combined statement that fails is
not retried as a whole: every consumer applies its own batch alone, as before, and finds its
own error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from app.pipeline.applier import BatchResult, Delivery, apply_at_once
from app.projections.base import Projection


class _Lead:
    """Handed to a waiting batch: no transaction is running; lead the next one."""


_LEAD = _Lead()
# Transactions a worker runs at once. With two, one is in PostgreSQL while the consumers of
# the other acknowledge, read and bind their next batches: the read store and this process
# work at the same time instead of taking turns. Two transactions never hold batches of one
# partition (a consumer submits its next batch once its last one committed), and every fold
# writes its rows in key order, so they cannot deadlock; they only wait on a shared row.
TRANSACTIONS = 2
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
    """The turn-taking of a worker's consumers at the read store.

    At most `transactions` transactions run at once, and at most one leader gathers batches
    at a time (for one step of the event loop): a batch submitted while none can start waits
    and goes with the next one that does."""

    def __init__(self, engine: AsyncEngine, transactions: int = TRANSACTIONS) -> None:
        self.engine = engine
        self.transactions = transactions
        self._waiting: list[_Batch] = []  # submitted, not yet taken into a transaction
        self._running = 0  # transactions running or about to start (their leader chosen)
        self._gathering = False  # a leader is chosen and has not taken the waiting batches yet

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
        if self._running < self.transactions and not self._gathering:
            self._running += 1
            self._gathering = True
        else:
            outcome = await self._follow(batch)
            if not isinstance(outcome, _Lead):
                return outcome
        return await self._lead(batch)

    async def _follow(self, batch: _Batch) -> Outcome:
        try:
            return await asyncio.shield(batch.outcome)
        except asyncio.CancelledError:
            if batch.outcome.done() and isinstance(batch.outcome.result(), _Lead):
                self._gathering = False  # chosen to lead, and gone: the next is chosen
                self._release()
            elif not batch.taken:
                self._waiting.remove(batch)
            elif not batch.outcome.done():
                # Its events are being written: end only once that transaction has, so the
                # partition's lease is given back after its last write, as for a lone batch.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([batch.outcome])
            raise

    async def _lead(self, own: _Batch) -> BatchResult | None:
        # One step of the event loop: the consumers that one stream entry woke (one per
        # projection) submit theirs first, and all go in this transaction.
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._gathering = False
            if own in self._waiting:
                self._waiting.remove(own)
            self._release()
            raise
        self._gathering = False
        taken, self._waiting = self._waiting, []
        if own not in taken:  # handed the lead: it left the waiting list then
            taken.insert(0, own)
        for batch in taken:
            batch.taken = True
        others = [batch for batch in taken if batch is not own]
        try:
            results = await self._apply(taken)
        except BaseException as error:
            for batch in others:
                batch.outcome.set_result(None)  # not applied: each applies its own alone
            self._release()
            if not others or not isinstance(error, Exception):
                raise
            return None
        for batch in others:
            batch.outcome.set_result(results.get(batch, BatchResult()))
        self._release()
        return results.get(own, BatchResult())

    def _release(self) -> None:
        """A transaction ended (or its leader left before it began): hand its turn to the
        first waiting batch, unless a leader already gathers them (it takes them all)."""
        if self._waiting and not self._gathering:
            batch = self._waiting.pop(0)
            self._gathering = True
            batch.outcome.set_result(_LEAD)
        else:
            self._running -= 1

    async def _apply(self, batches: Sequence[_Batch]) -> dict[_Batch, BatchResult]:
        """Each projection's batches as one, projections in name order (so two workers'
        statements take their locks in one order), in one statement; each projection's
        changed keys go to its first batch, and what the statement left to each batch's own
        deliveries (see apply_at_once)."""
        by_projection: dict[str, list[_Batch]] = {}
        for batch in batches:
            by_projection.setdefault(batch.projection.name, []).append(batch)
        groups = [by_projection[name] for name in sorted(by_projection)]
        work = [
            (group[0].projection, [delivery for batch in group for delivery in batch.deliveries])
            for group in groups
        ]
        results = await apply_at_once(self.engine, work)
        outcomes: dict[_Batch, BatchResult] = {}
        for group, result in zip(groups, results, strict=True):
            left = {id(delivery) for delivery in result.left}
            outcomes[group[0]] = result
            for batch in group:
                outcome = outcomes.setdefault(batch, BatchResult())
                outcome.left = [d for d in batch.deliveries if id(d) in left]
        return outcomes
