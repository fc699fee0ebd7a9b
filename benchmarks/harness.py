"""What every benchmark shares beyond devtools: the servers they run on, `shop serve` and the
CRUD baseline as processes, wrk, and measurements."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.ports import listening
from devtools.processes import installed, shop_command
from devtools.servers import ServerProcess, serving
from devtools.stores import StoreServers, StoreUrls, store_servers

ROOT = Path(__file__).resolve().parents[1]
LUA = Path(__file__).parent / "lua"


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_servers() -> Iterator[StoreServers]:
    """SHOP_BENCH_POSTGRES_URL / SHOP_BENCH_REDIS_URL, else the local ones on their usual
    ports, else embedded servers in a temporary folder."""
    postgres = os.environ.get("SHOP_BENCH_POSTGRES_URL")
    redis = os.environ.get("SHOP_BENCH_REDIS_URL")
    if postgres is None and listening("127.0.0.1", 5432):
        postgres = "postgresql://postgres@127.0.0.1:5432/postgres"
    if redis is None and listening("127.0.0.1", 6379):
        redis = "redis://127.0.0.1:6379/0"
    with store_servers(postgres, redis, named="this machine's PostgreSQL and Redis") as servers:
        yield servers


def _raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_nofile()


async def mark_delivered(stores: StoreUrls) -> None:
    """Tell the relay that Redis has every event the seeded log marks published, as it
    would after a real history: without the partitions' epoch keys, a fresh Redis prefix
    makes the relay send the whole log again (see app/pipeline/relay.py)."""
    import redis.asyncio as aioredis

    from app.events.streams import epoch_key

    redis = aioredis.Redis.from_url(stores.redis)
    try:
        for partition in range(stores.settings().stream_partitions):
            await redis.set(epoch_key(stores.prefix, partition), uuid.uuid4().hex)
    finally:
        await redis.aclose()


async def settle(process: ServerProcess, stores: StoreUrls, timeout_s: float = 3600) -> None:
    """Wait until the pipeline is idle: the relay has checked Redis, nothing is left to
    relay and no projection lags.

    On a fresh Redis the relay publishes the whole log again (it cannot know what Redis
    lost) and the projectors skip it all; measuring before that ends measures that. The
    relay sets each partition's epoch key once it has checked, so until every epoch key
    exists the outbox may still be about to be sent again."""
    import redis.asyncio as aioredis

    from app.events.streams import epoch_key

    settings = stores.settings()
    epochs = [epoch_key(stores.prefix, p) for p in range(settings.stream_partitions)]
    query = {"query": "{ projections { lagEvents } }"}
    quiet = 0
    started = time.monotonic()
    redis = aioredis.Redis.from_url(stores.redis)
    async with httpx.AsyncClient(timeout=30) as client:
        while quiet < 3:
            if time.monotonic() - started > timeout_s:
                raise BenchError("the pipeline did not settle")
            if await redis.exists(*epochs) < len(epochs):
                await asyncio.sleep(0.5)
                continue
            body = (await client.post(process.graphql_url, json=query)).json()
            metrics = (await client.get(f"{process.base_url}/metrics")).text
            backlog = re.search(r"^shop_outbox_backlog (\S+)", metrics, re.M)
            lag = sum(p["lagEvents"] for p in body["data"]["projections"])
            idle = lag == 0 and backlog is not None and float(backlog[1]) == 0
            quiet = quiet + 1 if idle else 0
            await asyncio.sleep(0.5)
    await redis.aclose()


def shop_serve(stores: StoreUrls, name: str = "shop", **extra: str) -> Any:
    env = stores.env(SHOP_LOG_LEVEL="warning", **extra)
    return serving([str(shop_command()), "serve"], env, name, "/readyz")


def crud_serve(stores: StoreUrls) -> Any:
    command = [sys.executable, "-m", "benchmarks.crud_baseline", "--database-url", stores.write]
    return serving(command, dict(os.environ), "crud", "/healthz")


def ceiling_serve(stores: StoreUrls) -> Any:
    """The `{ __typename }` ceiling: a plain Starlette endpoint served as `shop serve` serves
    the app (`python -m benchmarks.queries ceiling`)."""
    command = [sys.executable, "-m", "benchmarks.queries", "ceiling"]
    return serving(command, stores.env(SHOP_LOG_LEVEL="warning"), "ceiling", "/healthz")


# ---- wrk ---------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """Throughput and latency of one load run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# The servers' processes, by name, for cpu_meter.
_SERVER_KINDS = {"postgres": "PostgreSQL", "redis-server": "Redis"}


def _cpu_seconds(api_pid: int | None) -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, start time) -> (kind, CPU seconds so far) of every process of a known kind, its
    ended children included (PostgreSQL's postmaster reaps the backends of closed
    connections), and of this process's ended children (the load generator)."""
    api = psutil.Process(api_pid) if api_pid else None
    # `shop serve`'s children: the pipeline (`python -m app worker`) and, with SHOP_WORKERS,
    # more API processes (uvicorn's workers).
    children = api.children(recursive=True) if api else []
    pipeline = {child.pid for child in children if "worker" in _cmdline(child)}
    apis = {api_pid} | {child.pid for child in children} - pipeline
    ended = os.times()
    found = {(0, 0.0): ("load generator", ended.children_user + ended.children_system)}
    for process in psutil.process_iter(["name", "create_time"]):
        try:
            name = process.info["name"] or ""
            if process.pid in apis:
                kind = "API processes"
            elif process.pid in pipeline:
                kind = "pipeline (relay, projectors)"
            elif name in _SERVER_KINDS:
                kind = _SERVER_KINDS[name]
            else:
                continue
            t = process.cpu_times()
            seconds = t.user + t.system + t.children_user + t.children_system
            found[(process.pid, process.info["create_time"])] = (kind, seconds)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return list(map(str, process.cmdline()))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@contextlib.contextmanager
def cpu_meter(api_pid: int | None = None) -> Iterator[dict[str, float]]:
    """CPU seconds each kind of process spent during the block, filled in on exit: the API
    processes (`shop serve` and its uvicorn workers), the pipeline, PostgreSQL, Redis, and
    the load generator (wrk or pgbench, run by this process). Meant for runs whose
    connections stay open."""
    spent: dict[str, float] = {}
    before = _cpu_seconds(api_pid)
    yield spent
    for key, (kind, seconds) in _cpu_seconds(api_pid).items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(key, (kind, 0.0))[1]


def require_tool(name: str, hint: str) -> str:
    path = installed(name)
    if path is None:
        raise BenchError(f"{name} is not installed: {hint}")
    return str(path)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def wrk(
    url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    env: dict[str, str] | None = None,
) -> LoadResult:
    """Run wrk (one thread: it needs far less CPU than the server) with a Lua script from
    benchmarks/lua; the script reports failed GraphQL responses on its last line."""
    binary = require_tool("wrk", "apt-get install wrk")
    command = [
        binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "--timeout", "30s", "-s", str(LUA / script), url,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_LUA_DIR": str(LUA), **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
        p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
        total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    except (TypeError, AttributeError) as error:
        raise BenchError(f"cannot read wrk's output:\n{out}") from error
    failures = 0
    if found := re.search(r"graphql_failures=(\d+)", out):
        failures = int(found[1])
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        failures = max(failures, int(found[1]))
    if found := re.search(r"Socket errors: .*", out):
        log(f"wrk {script}: {found[0]}")
    if failures:
        sample = re.search(r"first_failure=(.*)", out)
        log(f"wrk {script}: {failures} failed responses; first: {sample[1] if sample else '?'}")
    return LoadResult(rps, p50, p99, total, failures)


def write_lua_data(path: Path, **lists: Iterable[str]) -> None:
    """The ids for the Lua scripts to pick from, as plain text: a line `#name` starts the
    list `name`, each line after it is one id. benchmarks/lua/common.lua reads it in each
    wrk thread's `init` (a Lua table literal of a million ids would be too big for LuaJIT
    to load), so a list can hold every id of a data set."""
    with path.open("w") as out:
        for name, values in lists.items():
            out.write(f"#{name}\n")
            out.writelines(f"{value}\n" for value in values)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "python": sys.version.split()[0],
        "os": " ".join(os.uname()[0:3:2]),
    }
