"""The service under soak, as `shop` subprocesses on the soak's stores, and the faults a
soak injects into it: workers killed, Redis restarted, an API process killed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from devtools.ports import free_port
from devtools.processes import ShopProcesses, environment_without_settings
from devtools.servers import Address, until_answering
from devtools.soak.stores import PrivateRedis
from devtools.stores import StoreUrls

API_ROLES = ("command", "query")
FAULTS = ("worker killed", "Redis restarted", "API killed")
# Long enough for the relay and the projectors to notice Redis is gone.
REDIS_DOWN_S = 1.0


class Service:
    """A command API, a query API and workers: `shop` processes, each restartable."""

    def __init__(self, env: dict[str, str], log_dir: Path, workers: int) -> None:
        self.processes = ShopProcesses(env, log_dir)
        self.workers = workers
        self.ports = {role: free_port() for role in API_ROLES}

    def url(self, role: str) -> str:
        return Address.loopback(self.ports[role]).graphql_url

    def start_api(self, role: str) -> None:
        port = str(self.ports[role])
        self.processes.start(f"{role}-api", "serve", "--role", role, "--port", port)

    async def start(self) -> None:
        for role in API_ROLES:
            self.start_api(role)
        for _ in range(self.workers):
            self.processes.start_worker()
        await asyncio.gather(*(self.answering(role) for role in API_ROLES))

    async def answering(self, role: str) -> None:
        """Return once the API answers; StartError if it dies or takes too long."""
        name = f"{role}-api"
        await until_answering(
            self.processes.processes[name],
            Address.loopback(self.ports[role]),
            name=f"the {role} API",
            log_path=self.processes.log_path(name),
        )


class Chaos:
    """Injects the faults in turn, one every `interval_s`, each recovered before the next."""

    def __init__(
        self,
        service: Service,
        redis: PrivateRedis,
        interval_s: float,
        rng: random.Random,
        say: Callable[[str], None],
    ) -> None:
        self.service = service
        self.redis = redis
        self.interval_s = interval_s
        self.rng = rng
        self.say = say
        self.injected: Counter[str] = Counter()
        self._api_roles = itertools.cycle(API_ROLES)

    @property
    def every_kind_injected(self) -> bool:
        return all(self.injected[kind] for kind in FAULTS)

    async def run(self, stop: asyncio.Event) -> None:
        for kind in itertools.cycle(FAULTS):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
                return
            started = time.monotonic()
            what = await self.inject(kind)
            self.injected[kind] += 1
            self.say(f"fault: {kind} ({what}); recovered in {time.monotonic() - started:.1f} s")

    async def inject(self, kind: str) -> str:
        if kind == "worker killed":
            processes = self.service.processes
            victim = self.rng.choice(processes.running_workers())
            pid = await asyncio.to_thread(processes.kill, victim)
            return f"{victim}, pid {pid}; started {processes.start_worker()}"
        if kind == "Redis restarted":
            await asyncio.to_thread(self.redis.kill)
            await asyncio.sleep(REDIS_DOWN_S)
            await asyncio.to_thread(self.redis.start)
            return f"SIGKILL, down {REDIS_DOWN_S:.0f} s, started again"
        role = next(self._api_roles)
        pid = await asyncio.to_thread(self.service.processes.kill, f"{role}-api")
        self.service.start_api(role)
        await self.service.answering(role)
        return f"the {role} API, pid {pid}, killed mid-requests and started again"


def service_env(stores: StoreUrls) -> dict[str, str]:
    """The environment of the service's processes: this one's, without any SHOP_* setting of
    the user's, plus the soak's stores."""
    return stores.env(
        environment_without_settings(),
        SHOP_LOG_LEVEL="warning",
        SHOP_STREAM_PARTITIONS="4",
        # A killed worker's partitions pass to another within seconds.
        SHOP_LEASE_TTL_S="3",
        # Four processes share the server with whatever else runs on it.
        SHOP_DB_POOL_SIZE="4",
    )
