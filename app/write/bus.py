"""The command bus: what the GraphQL layer calls to run a command, logged and measured."""

from __future__ import annotations

from app.security.principal import Principal
from app.write.commands import Command
from app.write.executor import Accepted, CommandExecutor
from app.write.instrumentation import CommandMetrics, logged


class CommandBus:
    """Hands each command to the executor, with its log line and metrics around it."""

    def __init__(self, executor: CommandExecutor, metrics: CommandMetrics) -> None:
        self._executor = executor
        self._metrics = metrics

    async def dispatch(self, command: Command, *, principal: Principal | None = None) -> Accepted:
        """Run the command; raises Rejected (nothing written) when a rule refuses it. Log lines
        carry the request id from the logging context."""
        name = type(command).__name__
        with logged(name), self._metrics.measured(name):
            return await self._executor.execute(command, principal)
