"""One soak: fresh stores, the service as `shop` processes, mixed load with chaos for a set
time, the wait for the projections to catch up, and the audit."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from devtools.read_model_check import until_projected
from devtools.soak.audit import Audit, Discrepancy, audit
from devtools.soak.chaos import Chaos, Service, service_env
from devtools.soak.load import Endpoints, Ledger, Shopper
from devtools.soak.stores import PrivateRedis, SoakDatabases, soak_databases
from devtools.stores import StoreUrls, server_versions


@dataclass(frozen=True)
class Options:
    duration_s: float
    clients: int = 8
    workers: int = 2
    fault_interval_s: float = 20.0
    customers: int = 20
    products: int = 12
    stock: int = 300
    seed: int = 0
    settle_timeout_s: float = 300.0
    answer_within_s: float = 120.0
    keep: bool = False

    @property
    def fault_every_s(self) -> float:
        """At most `fault_interval_s`, and short enough that a short run sees each kind."""
        return max(1.0, min(self.fault_interval_s, self.duration_s / 4))


class Console:
    """Where a soak says what happens (a line each) and how it goes (one line, redrawn)."""

    def __init__(self, say: Callable[[str], None], status: Callable[[str], None]) -> None:
        self.say = say
        self.status = status


@dataclass
class Figures:
    load_s: float = 0.0
    settle_s: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    exited_on_their_own: list[str] = field(default_factory=list)
    problems: list[Discrepancy] = field(default_factory=list)


class Soak:
    """The stores of one soak, the ledger of its clients, and what it measured."""

    def __init__(
        self,
        options: Options,
        databases: SoakDatabases,
        redis: PrivateRedis,
        folder: Path,
        console: Console,
    ) -> None:
        self.options = options
        self.databases = databases
        self.redis = redis
        self.folder = folder
        self.console = console
        self.ledger = Ledger()
        self.figures = Figures()

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(
        cls, postgres_server_url: str, options: Options, console: Console
    ) -> AsyncIterator[Soak]:
        """Fresh databases and a private Redis (in a temporary folder, with the processes'
        logs), removed at the end unless `options.keep`."""
        async with soak_databases(postgres_server_url, options.keep) as databases:
            folder = Path(tempfile.mkdtemp(prefix="shop-soak-"))
            redis = PrivateRedis(folder)
            try:
                await asyncio.to_thread(redis.start)
                yield cls(options, databases, redis, folder, console)
            finally:
                await asyncio.to_thread(redis.stop)
                if not options.keep:
                    shutil.rmtree(folder, ignore_errors=True)

    async def run(self) -> None:
        """Start the service, load it with chaos, stop it once the projections caught up."""
        stores = StoreUrls(
            self.databases.url("write"), self.databases.url("read"), self.redis.url, "soak"
        )
        env = service_env(stores)
        service = Service(env, self.folder, self.options.workers)
        try:
            await service.start()
            self.console.say(f"service up: 2 API processes, {self.options.workers} workers")
            await self._load(service)
            self.figures.exited_on_their_own = service.processes.exited_on_their_own()
            await self._settle()
        finally:
            await asyncio.to_thread(service.processes.stop)

    async def _load(self, service: Service) -> None:
        o = self.options
        endpoints = Endpoints(service.url("command"), service.url("query"))
        async with httpx.AsyncClient(timeout=30) as http:
            rngs = [random.Random(f"{o.seed}-{n}") for n in range(o.clients)]
            shoppers = [Shopper(http, endpoints, self.ledger, r, o.answer_within_s) for r in rngs]
            await shoppers[0].seed(o.customers, o.products, o.stock)
            chaos = Chaos(
                service, self.redis, o.fault_every_s, random.Random(o.seed), self.console.say
            )
            self.figures.faults = chaos.injected
            stop_chaos, stop_load = asyncio.Event(), asyncio.Event()
            faults = asyncio.create_task(chaos.run(stop_chaos))
            clients = [asyncio.create_task(s.keep_going(stop_load)) for s in shoppers]
            started = time.monotonic()
            try:
                await self._until_done(chaos, [faults, *clients], started)
                stop_chaos.set()
                await faults  # the fault under way is recovered first
                stop_load.set()
                await asyncio.gather(*clients)
            finally:  # on failure or Ctrl-C, leave no task behind
                for task in (faults, *clients):
                    task.cancel()
                await asyncio.gather(faults, *clients, return_exceptions=True)
            self.figures.load_s = time.monotonic() - started

    async def _until_done(
        self, chaos: Chaos, tasks: list[asyncio.Task[None]], started: float
    ) -> None:
        """Until the time is up and every kind of fault has happened, redraw the progress."""
        while time.monotonic() - started < self.options.duration_s or not chaos.every_kind_injected:
            for task in tasks:
                if task.done():
                    task.result()  # a fault not recovered, a soak bug: the soak ends
            self.console.status(self._progress(time.monotonic() - started))
            await asyncio.sleep(1)

    def _progress(self, elapsed: float) -> str:
        duration = self.options.duration_s
        done = min(1.0, elapsed / duration)
        bar = "#" * round(20 * done) + "." * (20 - round(20 * done))
        outcomes = self.ledger.outcomes()
        return (
            f"load [{bar}] {elapsed:.0f}/{duration:.0f} s  "
            f"acknowledged {outcomes['acknowledged']:,}  refused {outcomes['rejected']:,}  "
            f"retries {sum(self.ledger.retried_after.values()):,}  "
            f"queries {sum(self.ledger.queries.values()):,}  "
            f"faults {sum(self.figures.faults.values())}"
        )

    async def _settle(self) -> None:
        """Wait until every projection has applied every aggregate's latest version."""
        started = time.monotonic()
        behind = await until_projected(
            self.databases.write,
            self.databases.read,
            self.options.settle_timeout_s,
            lambda behind: self.console.status(
                f"catching up: aggregates behind per projection {behind}"
            ),
        )
        waited = time.monotonic() - started
        if any(behind.values()):
            self.figures.problems.append(
                Discrepancy("pipeline", f"not caught up after {waited:.0f} s: {behind}")
            )
            return
        self.figures.settle_s = waited
        self.console.say(f"projections caught up in {waited:.1f} s")

    async def audit(self) -> Audit:
        """The audit of everything the stores hold now, with what the run itself noticed."""
        self.console.say("auditing: replaying the log, matching mutations and stock")
        found = await audit(self.databases, self.ledger)
        return replace(found, discrepancies=(*self.figures.problems, *found.discrepancies))

    async def versions(self) -> str:
        """The servers the soak ran on."""
        found = await server_versions(self.databases.url("write"), self.redis.url)
        return f"PostgreSQL {found['postgres']}, Redis {found['redis']} (private, restartable)"
