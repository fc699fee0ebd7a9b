"""A command's first attempt takes no lock and opens no transaction; its one write statement
commits only if nothing it read has changed, and else writes nothing and the command runs
again under locks. Real PostgreSQL, real concurrent commands (app/write/unit_of_work.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from app.adapters import postgres
from app.config.settings import Settings
from app.events.consistency_token import TokenKey
from app.runtime.bootstrap import Stores
from app.security.principal import Principal, UserRole
from app.write import commands
from app.write.authorization import command_rules
from app.write.domain.aggregate import Aggregate
from app.write.executor import CommandExecutor
from app.write.handlers import (
    HANDLERS,
    Handlers,
    change_product_price,
    pay_order,
    place_order,
    register_customer,
)
from app.write.ports import UnitOfWork
from app.write.unit_of_work import PostgresUnitOfWork
from devtools import store_snapshot

ADMIN = Principal(UserRole.ADMIN, "admin")


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    opened = await postgres.create_pool(settings.database_url, pool_size=4, connect_timeout_s=5)
    yield opened
    await opened.close()


class Recorded:
    """The executor's unit-of-work factory on the pool, noting whether each one locked."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.locking: list[bool] = []

    def __call__(self, *, locking: bool) -> PostgresUnitOfWork:
        self.locking.append(locking)
        return PostgresUnitOfWork(self.pool, locking=locking)


def executor(factory: Recorded, handlers: Handlers = HANDLERS) -> CommandExecutor:
    return CommandExecutor(
        unit_of_work=factory, handlers=handlers, policy=command_rules, token_key=TokenKey(b"t" * 32)
    )


class Interleaved:
    """A handler that, on its first run only, lets another command commit after its reads
    and before its write: the race an unlocked attempt can lose."""

    def __init__(
        self,
        handler: Callable[[Any, UnitOfWork], Awaitable[Aggregate]],
        meanwhile: Callable[[], Awaitable[object]],
    ) -> None:
        self.handler = handler
        self.meanwhile = meanwhile
        self.runs = 0

    async def __call__(self, command: Any, uow: UnitOfWork) -> Aggregate:
        self.runs += 1
        aggregate = await self.handler(command, uow)
        if self.runs == 1:
            await self.meanwhile()
        return aggregate


async def seed(run: CommandExecutor, stock: int = 10) -> tuple[UUID, UUID]:
    customer = await run.execute(
        commands.RegisterCustomer(email="ada@example.com", name="Ada"), ADMIN
    )
    product = await run.execute(
        commands.CreateProduct(sku="SKU-1", name="Pen", price_cents=250, stock=stock), ADMIN
    )
    return customer.aggregate_id, product.aggregate_id


def order_of(customer: UUID, product: UUID, quantity: int) -> commands.PlaceOrder:
    line = commands.OrderLine(product_id=product, quantity=quantity)
    return commands.PlaceOrder(customer_id=customer, lines=(line,))


async def test_an_uncontended_command_commits_on_its_first_attempt_without_locks(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    factory = Recorded(pool)
    run = executor(factory)
    customer, product = await seed(run)
    factory.locking.clear()
    accepted = await run.execute(order_of(customer, product, 3), ADMIN)
    assert factory.locking == [False]
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert [row[4] for row in snapshot["products"]] == [7]
    assert [row[0] for row in snapshot["orders"]] == [accepted.aggregate_id]


async def test_an_unlocked_read_holds_no_lock_until_the_write(pool: asyncpg.Pool) -> None:
    _, product = await seed(executor(Recorded(pool)))
    async with PostgresUnitOfWork(pool, locking=False) as uow:
        await uow.products.lock([product])
        async with pool.acquire() as other:
            # Would fail at once (lock_not_available) if the read had locked the row.
            await other.execute("SELECT FROM products WHERE id = $1 FOR UPDATE NOWAIT", product)


async def test_an_order_whose_product_changed_after_its_read_runs_again_under_locks(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    factory = Recorded(pool)
    customer, product = await seed(executor(factory), stock=10)
    # Another order takes stock without giving the product a new version: only the stock
    # the first attempt read tells that it is out of date.
    other = order_of(customer, product, 4)
    handler = Interleaved(place_order, lambda: executor(factory).execute(other, ADMIN))
    run = executor(factory, Handlers().add(commands.PlaceOrder, handler))
    factory.locking.clear()

    accepted = await run.execute(order_of(customer, product, 3), ADMIN)

    # This order's unlocked attempt, the other order in between, this one again under locks.
    assert factory.locking == [False, False, True]
    assert handler.runs == 2
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert [row[4] for row in snapshot["products"]] == [10 - 4 - 3]  # neither change lost
    assert accepted.aggregate_id in [row[0] for row in snapshot["orders"]]
    kinds = [event["event_type"] for event in await store_snapshot.outbox(stores.write_engine)]
    assert kinds.count("OrderPlaced") == 2


async def test_a_write_that_finds_its_product_changed_fails_and_writes_nothing(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    run = executor(Recorded(pool))
    customer, product = await seed(run)
    async with PostgresUnitOfWork(pool, locking=False) as uow:
        change = commands.ChangeProductPrice(product_id=product, price_cents=300)
        await change_product_price(change, uow)
        await run.execute(order_of(customer, product, 1), ADMIN)  # stock, not the version
        before = await store_snapshot.write_store(stores.write_engine)
        with pytest.raises(asyncpg.SerializationError):
            await uow.commit()
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_a_write_that_finds_its_order_changed_fails_and_writes_nothing(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    run = executor(Recorded(pool))
    customer, product = await seed(run)
    order = (await run.execute(order_of(customer, product, 1), ADMIN)).aggregate_id
    async with PostgresUnitOfWork(pool, locking=False) as uow:
        await pay_order(commands.PayOrder(order_id=order), uow)
        await run.execute(commands.CancelOrder(order_id=order), ADMIN)
        before = await store_snapshot.write_store(stores.write_engine)
        with pytest.raises(asyncpg.SerializationError):
            await uow.commit()
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_a_command_id_taken_between_read_and_write_replays_the_first_result(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    factory = Recorded(pool)
    register = commands.RegisterCustomer(command_id="c-1", email="bo@example.com", name="Bo")
    first: list[UUID] = []

    async def same_command_first() -> None:
        first.append((await executor(factory).execute(register, ADMIN)).aggregate_id)

    handler = Interleaved(register_customer, same_command_first)
    run = executor(factory, Handlers().add(commands.RegisterCustomer, handler))

    accepted = await run.execute(register, ADMIN)

    # Not ALREADY_EXISTS for the email the other took: the first result, replayed.
    assert accepted.aggregate_id == first[0]
    assert factory.locking == [False, False, True]
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert [row[0] for row in snapshot["customers"]] == first
    assert len(snapshot["idempotency"]) == 1
