"""What every benchmark shares: fresh stores, server processes, wrk, and measurements."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from app.adapters.migrations import History, upgrade
from app.adapters.postgres import create_engine
from devtools.databases import run_on_server, with_database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = Path(__file__).parent / "lua"


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- stores ------------------------------------------------------------------------------


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@dataclass
class Servers:
    """The PostgreSQL and Redis servers the benchmarks run on."""

    postgres_url: str  # its `postgres` database
    redis_url: str
    description: str
    _embedded: Any = None

    @classmethod
    @contextlib.contextmanager
    def open(cls) -> Iterator[Servers]:
        """SHOP_BENCH_POSTGRES_URL / SHOP_BENCH_REDIS_URL, else the local ones on their
        usual ports, else embedded servers in a temporary folder."""
        pg = os.environ.get("SHOP_BENCH_POSTGRES_URL")
        redis = os.environ.get("SHOP_BENCH_REDIS_URL")
        if pg is None and _reachable("127.0.0.1", 5432):
            pg = "postgresql://postgres@127.0.0.1:5432/postgres"
        if redis is None and _reachable("127.0.0.1", 6379):
            redis = "redis://127.0.0.1:6379/0"
        if pg and redis:
            yield cls(pg, redis, "this machine's PostgreSQL and Redis")
            return
        from app.embedded import EmbeddedServers

        with tempfile.TemporaryDirectory(prefix="shop-bench-") as folder:
            embedded = EmbeddedServers(Path(folder), postgres=pg is None, redis=redis is None)
            urls = embedded.start()
            try:
                pg = pg or with_database(str(urls.write_database_url), "postgres")
                redis = redis or str(urls.redis_url)
                yield cls(pg, redis, "embedded PostgreSQL and Redis", embedded)
            finally:
                embedded.stop()

    async def versions(self) -> dict[str, str]:
        connection = await asyncpg.connect(self.postgres_url)
        try:
            postgres = str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis_url)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return {"postgres": postgres, "redis": str(info["redis_version"])}


@dataclass
class Stores:
    """A fresh write database, read database and Redis prefix for one benchmark."""

    servers: Servers
    tag: str
    write_url: str
    read_url: str
    prefix: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "SHOP_DATABASE_URL": self.write_url,
            "SHOP_READ_DATABASE_URL": self.read_url,
            "SHOP_REDIS_URL": self.servers.redis_url,
            "SHOP_REDIS_PREFIX": self.prefix,
            "SHOP_LOG_LEVEL": "warning",
            **extra,
        }

    def settings(self, **extra: Any) -> Any:
        from app.config.settings import Settings

        return Settings(
            database_url=self.write_url,
            read_database_url=self.read_url,
            redis_url=self.servers.redis_url,
            redis_prefix=self.prefix,
            log_level="warning",
            **extra,
        )


@contextlib.asynccontextmanager
async def fresh_stores(servers: Servers, label: str) -> AsyncIterator[Stores]:
    """Migrated, empty databases and a Redis prefix; all dropped at the end."""
    tag = f"bench_{label}_{uuid.uuid4().hex[:6]}"
    write, read = f"{tag}_write", f"{tag}_read"
    await run_on_server(
        servers.postgres_url, f'CREATE DATABASE "{write}"', f'CREATE DATABASE "{read}"'
    )
    stores = Stores(
        servers,
        tag,
        with_database(servers.postgres_url, write),
        with_database(servers.postgres_url, read),
        tag,
    )
    try:
        for url, history in ((stores.write_url, History.WRITE), (stores.read_url, History.READ)):
            engine = create_engine(url, pool_size=1, connect_timeout_s=10)
            try:
                await upgrade(engine, history)
            finally:
                await engine.dispose()
        yield stores
    finally:
        await run_on_server(
            servers.postgres_url,
            f'DROP DATABASE IF EXISTS "{write}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{read}" WITH (FORCE)',
        )
        await _delete_prefix(servers.redis_url, tag)


async def _delete_prefix(redis_url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


# ---- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """A server started for a benchmark, with its URL and resident memory."""

    popen: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    def rss_mib(self) -> float:
        """Resident memory of the process and its children."""
        process = psutil.Process(self.popen.pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return float(total) / 2**20


def _raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_nofile()


@contextlib.asynccontextmanager
async def serving(
    command: Sequence[str], env: dict[str, str], name: str, ready_path: str = "/healthz"
) -> AsyncIterator[Process]:
    """Start a server on a free port; wait until it answers; stop it at the end."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"shop-bench-{name}-{port}.log"
    with log_path.open("wb") as output:
        popen = subprocess.Popen(  # noqa: ASYNC220 - a long-lived server, started once
            [*command, "--port", str(port)],
            env={**env, "SHOP_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    process = Process(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(600):
                if popen.poll() is not None:
                    raise BenchError(f"{name} exited at start:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(process.base_url + ready_path)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise BenchError(f"{name} did not answer within 60 s")
        yield process
    finally:
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


async def mark_delivered(stores: Stores) -> None:
    """Tell the relay that Redis has every event the seeded log marks published, as it
    would after a real history: without the partitions' epoch keys, a fresh Redis prefix
    makes the relay send the whole log again (see app/pipeline/relay.py)."""
    import redis.asyncio as aioredis

    from app.events.streams import epoch_key

    redis = aioredis.Redis.from_url(stores.servers.redis_url)
    try:
        for partition in range(stores.settings().stream_partitions):
            await redis.set(epoch_key(stores.prefix, partition), uuid.uuid4().hex)
    finally:
        await redis.aclose()


async def settle(process: Process, stores: Stores, timeout_s: float = 3600) -> None:
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
    redis = aioredis.Redis.from_url(stores.servers.redis_url)
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


def shop_serve(stores: Stores, name: str = "shop", **extra: str) -> Any:
    return serving([str(BIN / "shop"), "serve"], stores.env(**extra), name, "/readyz")


def crud_serve(stores: Stores) -> Any:
    command = [sys.executable, "-m", "benchmarks.crud_baseline", "--database-url", stores.write_url]
    return serving(command, dict(os.environ), "crud", "/healthz")


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


def require_tool(name: str, hint: str) -> str:
    # The venv's own tools (py-spy) are found without activating it.
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise BenchError(f"{name} is not installed: {hint}")
    return path


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


def write_lua_data(path: Path, **tables: Sequence[str]) -> None:
    """A Lua module of string arrays (ids for the scripts to pick from)."""
    lines = ["return {"]
    for name, values in tables.items():
        quoted = ",".join(json.dumps(str(v)) for v in values)
        lines.append(f"  {name} = {{{quoted}}},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


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
