"""The command bus: the executor with a log line and metrics around each command."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from app.events.consistency_token import TokenKey
from app.security.principal import Principal, UserRole
from app.write.authorization import command_rules
from app.write.bus import CommandBus
from app.write.commands import RegisterCustomer
from app.write.domain.errors import Rejected
from app.write.executor import CommandExecutor
from app.write.handlers import HANDLERS
from app.write.instrumentation import CommandMetrics
from tests.write.memory_uow import MemoryStore

ADMIN = Principal(UserRole.ADMIN, "admin")
REGISTER_ADA = RegisterCustomer(email="ada@example.com", name="Ada")


def bus(registry: CollectorRegistry) -> CommandBus:
    store = MemoryStore()
    run = CommandExecutor(
        unit_of_work=store.unit_of_work,
        handlers=HANDLERS,
        policy=command_rules,
        token_key=TokenKey(b"t" * 32),
    )
    return CommandBus(run, CommandMetrics(registry))


async def test_each_command_is_logged_with_its_name_and_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    commands = bus(CollectorRegistry())
    with caplog.at_level(logging.INFO, logger="app.commands"):
        await commands.dispatch(REGISTER_ADA, principal=ADMIN)
        with pytest.raises(Rejected):
            await commands.dispatch(REGISTER_ADA, principal=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.commands"]
    assert [line.split(" in ")[0] for line in lines] == [
        "RegisterCustomer accepted",
        "RegisterCustomer rejected (UNAUTHENTICATED)",
    ]


async def test_each_command_is_counted_and_timed_by_name_and_outcome() -> None:
    registry = CollectorRegistry()
    commands = bus(registry)
    await commands.dispatch(REGISTER_ADA, principal=ADMIN)
    with pytest.raises(Rejected):
        await commands.dispatch(REGISTER_ADA, principal=ADMIN)  # the email is taken now
    for outcome in ("accepted", "already_exists"):
        labels = {"command": "RegisterCustomer", "outcome": outcome}
        assert registry.get_sample_value("shop_commands_total", labels) == 1
        assert registry.get_sample_value("shop_command_seconds_count", labels) == 1
