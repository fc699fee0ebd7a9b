"""The service under soak, as `shop` subprocesses on the soak's stores, and the faults a
soak injects into it: workers killed, Redis restarted, an API process killed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from scripts.soak_load import SoakError
from scripts.soak_stores import PrivateRedis

API_ROLES = ("command", "query")
FAULTS = ("worker killed", "Redis restarted", "API killed")
STARTUP_DEADLINE_S = 90
# Long enough for the relay and the projectors to notice Redis is gone.
REDIS_DOWN_S = 1.0


def shop_command() -> str:
    """The `shop` console script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "shop"
    found = str(beside) if beside.exists() else shutil.which("shop")
    if found is None:
        raise SoakError("no `shop` command: install the project (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A command API, a query API and workers: `shop` processes, each restartable."""

    def __init__(self, env: dict[str, str], log_dir: Path, workers: int) -> None:
        self.env = env
        self.log_dir = log_dir
        self.workers = workers
        self.ports = {role: free_port() for role in API_ROLES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_names = (f"worker-{n}" for n in itertools.count(1))

    def url(self, role: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}/graphql"

    def _spawn(self, name: str, *arguments: str) -> None:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [shop_command(), *arguments],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on the soak is for the soak to handle
            )

    def start_api(self, role: str) -> None:
        self._spawn(f"{role}-api", "serve", "--role", role, "--port", str(self.ports[role]))

    def start_worker(self) -> str:
        name = next(self.worker_names)
        self._spawn(name, "worker")
        return name

    def running_workers(self) -> list[str]:
        return [n for n, p in self.processes.items() if n.startswith("worker") and p.poll() is None]

    async def start(self) -> None:
        for role in API_ROLES:
            self.start_api(role)
        for _ in range(self.workers):
            self.start_worker()
        await asyncio.gather(*(self.answering(role) for role in API_ROLES))

    async def answering(self, role: str) -> None:
        """Return once the API answers `{ __typename }`; SoakError if it dies or takes too long."""
        process = self.processes[f"{role}-api"]
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SoakError(f"the {role} API exited at start:\n{self.log_tail(role)}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = await http.post(self.url(role), json={"query": "{ __typename }"})
                    if answer.json() == {"data": {"__typename": "Query"}}:
                        return
                await asyncio.sleep(0.1)
        raise SoakError(f"the {role} API did not answer within {STARTUP_DEADLINE_S} s")

    def log_tail(self, role: str) -> str:
        return (self.log_dir / f"{role}-api.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> int:
        """kill -9, as a crash would; returns the pid."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return process.pid

    def exited_on_their_own(self) -> list[str]:
        gone = {name: p.poll() for name, p in self.processes.items()}
        return [f"{name} (status {code})" for name, code in gone.items() if code is not None]

    def stop(self) -> None:
        """SIGTERM everything, SIGKILL what is still there after 15 s."""
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            process.kill()  # nothing if it has exited
            process.wait()
        self.processes.clear()


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
            victim = self.rng.choice(self.service.running_workers())
            pid = await asyncio.to_thread(self.service.kill, victim)
            return f"{victim}, pid {pid}; started {self.service.start_worker()}"
        if kind == "Redis restarted":
            await asyncio.to_thread(self.redis.kill)
            await asyncio.sleep(REDIS_DOWN_S)
            await asyncio.to_thread(self.redis.start)
            return f"SIGKILL, down {REDIS_DOWN_S:.0f} s, started again"
        role = next(self._api_roles)
        pid = await asyncio.to_thread(self.service.kill, f"{role}-api")
        self.service.start_api(role)
        await self.service.answering(role)
        return f"the {role} API, pid {pid}, killed mid-requests and started again"


def service_env(write_url: str, read_url: str, redis_url: str) -> dict[str, str]:
    """The environment of the service's processes: this one's, without any SHOP_* setting of
    the user's (a token secret would lock the soak's clients out), plus the soak's stores."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    return env | {
        "SHOP_DATABASE_URL": write_url,
        "SHOP_READ_DATABASE_URL": read_url,
        "SHOP_REDIS_URL": redis_url,
        "SHOP_REDIS_PREFIX": "soak",
        "SHOP_LOG_LEVEL": "warning",
        "SHOP_STREAM_PARTITIONS": "4",
        # A killed worker's partitions pass to another within seconds.
        "SHOP_LEASE_TTL_S": "3",
        # Four processes share the server with whatever else runs on it.
        "SHOP_DB_POOL_SIZE": "4",
    }
