"""A process remembers the customers and products its commands read and wrote, and a
command's first attempt decides on them without reading the store: the write statement
checks them as it checks a read (app/write/remembered.py). Real PostgreSQL; each process is
its own `Remembered` on the same write store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from app.adapters.postgres import libpq_url
from app.config.settings import Settings
from app.events.consistency_token import TokenKey
from app.runtime.bootstrap import Stores
from app.security.principal import Principal, UserRole
from app.write import commands, remembered
from app.write.authorization import command_rules
from app.write.domain.errors import Rejected
from app.write.executor import CommandExecutor
from app.write.handlers import HANDLERS
from app.write.remembered import Remembered
from app.write.unit_of_work import PostgresUnitOfWork
from devtools import store_snapshot

ADMIN = Principal(UserRole.ADMIN, "admin")


class Statements:
    """Every statement the pool's connections sent, as PostgreSQL got it."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def watch(self, connection: asyncpg.Connection) -> None:
        connection.add_query_logger(lambda record: self.sent.append(record.query))


async def _nothing(connection: asyncpg.Connection) -> None:
    return None


@pytest.fixture
def statements() -> Statements:
    return Statements()


@pytest.fixture
async def pool(settings: Settings, statements: Statements) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    opened = await asyncpg.create_pool(
        libpq_url(settings.database_url),
        min_size=0,
        max_size=4,
        init=statements.watch,
        reset=_nothing,  # as the app's pool (app/adapters/postgres.py): no reset round trip
    )
    yield opened
    await opened.close()


class Process:
    """One API process's command path: its own memory, the shared store."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.memory = Remembered()
        self.attempts: list[tuple[bool, bool]] = []  # (locking, decided on memory)
        self.executor = CommandExecutor(
            unit_of_work=self.unit_of_work,
            handlers=HANDLERS,
            policy=command_rules,
            token_key=TokenKey(b"t" * 32),
        )
        self._pool = pool

    def unit_of_work(self, *, locking: bool) -> PostgresUnitOfWork:
        process = self

        class Noted(PostgresUnitOfWork):
            async def __aexit__(self, *exc: object) -> None:
                process.attempts.append((self.locking, self.remembered))
                await super().__aexit__(*exc)  # type: ignore[arg-type]

        return Noted(self._pool, locking=locking, memory=self.memory)

    async def run(self, command: commands.Command) -> UUID:
        return (await self.executor.execute(command, ADMIN)).aggregate_id


async def _seed(process: Process, stock: int) -> tuple[UUID, UUID]:
    customer = await process.run(commands.RegisterCustomer(email="ada@example.com", name="Ada"))
    product = await process.run(
        commands.CreateProduct(sku="SKU-1", name="Pen", price_cents=250, stock=stock)
    )
    return customer, product


def _order(customer: UUID, product: UUID, quantity: int) -> commands.PlaceOrder:
    line = commands.OrderLine(product_id=product, quantity=quantity)
    return commands.PlaceOrder(customer_id=customer, lines=(line,))


async def _stock(stores: Stores) -> list[int]:
    snapshot = await store_snapshot.write_store(stores.write_engine)
    return [row[4] for row in snapshot["products"]]


async def test_an_order_on_remembered_rows_is_one_statement(
    pool: asyncpg.Pool, stores: Stores, statements: Statements
) -> None:
    process = Process(pool)
    customer, product = await _seed(process, stock=10)
    process.attempts.clear()
    statements.sent.clear()

    await process.run(_order(customer, product, 3))
    await process.run(_order(customer, product, 2))

    assert process.attempts == [(False, True), (False, True)]
    assert len(statements.sent) == 2  # the write statement of each, nothing read
    assert await _stock(stores) == [5]


async def test_what_another_process_changed_fails_the_write_and_is_read_again(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    here, there = Process(pool), Process(pool)
    customer, product = await _seed(here, stock=10)
    await there.run(_order(customer, product, 4))  # stock 6; `here` still remembers 10
    here.attempts.clear()

    await here.run(_order(customer, product, 3))

    # Decided on 10, refused by the write statement, decided again on the store's 6.
    assert here.attempts == [(False, True), (True, False)]
    assert await _stock(stores) == [3]
    assert here.memory.products([product]) == [(product, 1, "SKU-1", "Pen", 250, 3)]
    here.attempts.clear()
    await here.run(_order(customer, product, 1))
    assert here.attempts == [(False, True)]
    assert await _stock(stores) == [2]


async def test_a_refusal_on_remembered_rows_is_decided_again_on_the_store(
    pool: asyncpg.Pool, stores: Stores
) -> None:
    here, there = Process(pool), Process(pool)
    customer, product = await _seed(here, stock=2)
    await there.run(commands.RestockProduct(product_id=product, quantity=100))  # 102
    here.attempts.clear()

    await here.run(_order(customer, product, 5))  # `here` remembers 2

    assert here.attempts == [(False, True), (True, False)]
    assert await _stock(stores) == [97]

    # A refusal the store confirms stands, and writes nothing.
    before = await store_snapshot.write_store(stores.write_engine)
    here.attempts.clear()
    with pytest.raises(Rejected) as refused:
        await here.run(_order(customer, product, 1000))
    assert [error.code.value for error in refused.value.errors] == ["INSUFFICIENT_STOCK"]
    assert here.attempts == [(False, True), (True, False)]
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_refusals_on_rows_read_from_the_store_are_final_at_once(pool: asyncpg.Pool) -> None:
    process = Process(pool)
    customer, _ = await _seed(process, stock=2)
    process.attempts.clear()
    with pytest.raises(Rejected):
        await process.run(_order(customer, UUID(int=7), 1))  # no such product
    assert process.attempts == [(False, False)]


def test_products_are_read_from_the_store_while_conflicts_are_many() -> None:
    memory = Remembered()
    row = (UUID(int=1), 1, "S", "N", 100, 5)
    memory.keep_products([row])
    for n in range(remembered.WINDOW):
        memory.settled(conflicted=n % 10 < 2)  # a fifth: not more than allowed
    assert memory.products([UUID(int=1)]) == [row]
    for n in range(remembered.WINDOW):
        memory.settled(conflicted=n % 10 < 3)
    assert memory.paused
    assert memory.products([UUID(int=1)]) is None
    assert memory.customer(UUID(int=1)) is None


def test_the_least_recently_used_go_first() -> None:
    memory = Remembered(capacity=2)
    rows = [(UUID(int=n), 1, f"S{n}", "N", 100, 5) for n in range(3)]
    memory.keep_products(rows[:2])
    assert memory.products([rows[0][0]]) is not None  # used: now the most recent
    memory.keep_products(rows[2:])
    assert memory.products([rows[1][0]]) is None
    assert memory.products([rows[0][0], rows[2][0]]) == [rows[0], rows[2]]
