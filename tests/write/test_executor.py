"""The command executor's steps and their order, on an in-memory unit of work: no database.

Transaction, authorization, idempotency, handler, commit; retried on a deadlock. What this
looks like end to end over GraphQL is in test_idempotency.py, test_security.py and
test_races.py.
"""

from __future__ import annotations

import pytest
from asyncpg.exceptions import (
    DeadlockDetectedError,
    SerializationError,
    UniqueViolationError,
)

from app.events.consistency_token import (
    AggregateVersion,
    MalformedTokenError,
    TokenKey,
    decode_token,
)
from app.security.principal import Principal, UserRole, caller_identity
from app.write.authorization import command_rules
from app.write.commands import Command, RegisterCustomer
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, Path, Rejected, reject
from app.write.executor import CommandExecutor
from app.write.handlers import HANDLERS, Handlers, register_customer
from app.write.ports import UnitOfWork
from tests.write.memory_uow import MemoryStore

ADMIN = Principal(UserRole.ADMIN, "admin")
TOKEN_KEY = TokenKey(b"t" * 32)
REGISTER_ADA = RegisterCustomer(command_id="c-1", email="ada@example.com", name="Ada")


class CountingHandler:
    """register_customer, counting its runs; the first runs may raise the given errors."""

    def __init__(self, *failures: BaseException) -> None:
        self.runs = 0
        self.failures = list(failures)

    async def __call__(self, command: RegisterCustomer, uow: UnitOfWork) -> Customer:
        self.runs += 1
        if self.failures:
            raise self.failures.pop(0)
        return await register_customer(command, uow)


def executor(store: MemoryStore, handler: CountingHandler | None = None) -> CommandExecutor:
    """An executor on the store, with the real rules and handlers (or that one for customers)."""
    handlers = HANDLERS if handler is None else Handlers().add(RegisterCustomer, handler)
    return CommandExecutor(
        unit_of_work=store.unit_of_work,
        handlers=handlers,
        policy=command_rules,
        token_key=TOKEN_KEY,
    )


def database_error(cause: Exception) -> Exception:
    """A database error as the unit of work raises it: asyncpg's own (no SQLAlchemy between)."""
    return cause


async def refusal(
    run: CommandExecutor, command: Command, principal: Principal | None = ADMIN
) -> list[tuple[ErrorCode, Path | None]]:
    with pytest.raises(Rejected) as info:
        await run.execute(command, principal)
    return [(error.code, error.field) for error in info.value.errors]


async def test_accepted_names_the_aggregate_its_version_and_what_the_command_produced() -> None:
    accepted = await executor(MemoryStore()).execute(REGISTER_ADA, ADMIN)
    assert accepted.version == 1
    assert decode_token(accepted.consistency_token, TOKEN_KEY, caller_identity(ADMIN)) == (
        AggregateVersion("Customer", accepted.aggregate_id, 1, ("CustomerRegistered",)),
    )


async def test_a_command_id_is_the_callers_own_so_another_caller_may_use_it_too() -> None:
    store, handler = MemoryStore(), CountingHandler()
    first = await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    other_admin = Principal(UserRole.ADMIN, "another-admin")
    register_bob = RegisterCustomer(command_id="c-1", email="bob@example.com", name="Bob")
    second = await executor(store, handler).execute(register_bob, other_admin)
    assert second.aggregate_id != first.aggregate_id
    assert handler.runs == 2
    # Each caller's repeat replays their own first result, with a token for them alone.
    assert await executor(store, handler).execute(REGISTER_ADA, ADMIN) == first
    assert await executor(store, handler).execute(register_bob, other_admin) == second
    assert handler.runs == 2
    mine = decode_token(second.consistency_token, TOKEN_KEY, caller_identity(other_admin))
    assert mine == (AggregateVersion("Customer", second.aggregate_id, 1, ("CustomerRegistered",)),)
    with pytest.raises(MalformedTokenError):
        decode_token(second.consistency_token, TOKEN_KEY, caller_identity(ADMIN))


async def test_a_refused_caller_gets_no_replay_of_an_earlier_result() -> None:
    store = MemoryStore()
    await executor(store).execute(REGISTER_ADA, ADMIN)
    customer = Principal(UserRole.CUSTOMER, "someone")
    assert await refusal(executor(store), REGISTER_ADA, customer) == [(ErrorCode.FORBIDDEN, None)]


async def test_an_anonymous_caller_is_refused_before_the_handler_runs() -> None:
    store, handler = MemoryStore(), CountingHandler()
    assert await refusal(executor(store, handler), REGISTER_ADA, None) == [
        (ErrorCode.UNAUTHENTICATED, None)
    ]
    assert handler.runs == 0


async def test_a_repeated_command_id_returns_the_first_result_and_runs_no_handler() -> None:
    store, handler = MemoryStore(), CountingHandler()
    first = await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    again = await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    assert again == first
    assert handler.runs == 1
    assert (len(store.customers), len(store.events)) == (1, 1)


async def test_a_command_id_reused_with_another_input_is_refused_and_runs_no_handler() -> None:
    store, handler = MemoryStore(), CountingHandler()
    await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    other = RegisterCustomer(command_id="c-1", email="bob@example.com", name="Bob")
    assert await refusal(executor(store, handler), other) == [
        (ErrorCode.COMMAND_ID_REUSED, ("commandId",))
    ]
    assert handler.runs == 1


async def test_a_command_without_a_command_id_runs_each_time() -> None:
    store, handler = MemoryStore(), CountingHandler()
    for email in ("ada@example.com", "bob@example.com"):
        await executor(store, handler).execute(RegisterCustomer(email=email, name="A"), ADMIN)
    assert handler.runs == 2
    assert store.results == {}


async def test_a_rejected_handler_commits_nothing_and_is_not_remembered() -> None:
    store = MemoryStore()

    async def add_then_refuse(command: RegisterCustomer, uow: UnitOfWork) -> Customer:
        await register_customer(command, uow)
        raise reject(ErrorCode.VALIDATION, "refused after adding", "name")

    run = CommandExecutor(
        unit_of_work=store.unit_of_work,
        handlers=Handlers().add(RegisterCustomer, add_then_refuse),
        policy=command_rules,
        token_key=TOKEN_KEY,
    )
    assert await refusal(run, REGISTER_ADA) == [(ErrorCode.VALIDATION, ("name",))]
    assert (store.commits, store.customers, store.events, store.results) == (0, {}, [], {})


@pytest.mark.parametrize("transient", [DeadlockDetectedError, SerializationError])
async def test_a_transient_failure_is_retried_and_the_retry_commits(
    transient: type[Exception],
) -> None:
    store = MemoryStore()
    handler = CountingHandler(database_error(transient("try again")))
    accepted = await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    assert handler.runs == 2
    assert store.commits == 1
    assert list(store.customers) == [accepted.aggregate_id]
    assert store.locking == [False, True]  # the first attempt without locks, the retry with


async def test_a_deadlock_on_every_attempt_is_raised_after_the_third() -> None:
    store = MemoryStore()
    handler = CountingHandler(*(database_error(DeadlockDetectedError("again")) for _ in range(3)))
    with pytest.raises(DeadlockDetectedError):
        await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    assert handler.runs == 3
    assert store.commits == 0
    assert store.locking == [False, True, True]


async def test_a_database_error_that_is_not_transient_is_not_retried() -> None:
    store = MemoryStore()
    handler = CountingHandler(database_error(UniqueViolationError("duplicate key")))
    with pytest.raises(UniqueViolationError):
        await executor(store, handler).execute(REGISTER_ADA, ADMIN)
    assert handler.runs == 1
    assert store.commits == 0


@pytest.mark.parametrize("command_type", Command.__subclasses__(), ids=lambda t: t.__name__)
def test_every_command_has_a_handler(command_type: type[Command]) -> None:
    assert command_type in HANDLERS
