"""Servers to test or measure: the app served in this event loop, or a server process on a
free port, and the wait until a server answers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import uvicorn
from starlette.applications import Starlette

from app.config.settings import Settings
from app.web.asgi import create_app, server_options
from devtools.ports import LOOPBACK, free_port
from devtools.processes import StartError

STARTUP_DEADLINE_S = 90
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Address:
    """Where a server answers."""

    base_url: str

    @classmethod
    def loopback(cls, port: int) -> Address:
        return cls(f"http://{LOOPBACK}:{port}")

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://", 1)


@dataclass(frozen=True)
class ServerUnderTest(Address):
    """The app served in this event loop."""

    app: Starlette


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    """Run the app in this event loop until the block ends; fail if it does not start."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        port = listener.getsockname()[1]
        app = create_app(settings)
        config = uvicorn.Config(app, log_config=None, lifespan="on", **server_options(settings))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.02)
        try:
            yield ServerUnderTest(Address.loopback(port).base_url, app)
        finally:
            server.should_exit = True
            await task


async def until_answering(
    process: subprocess.Popen[bytes],
    address: Address,
    *,
    ready_path: str | None = None,
    name: str = "shop",
    log_path: Path | None = None,
    deadline_s: float = STARTUP_DEADLINE_S,
) -> float:
    """Seconds until the server answers: GET `ready_path` with 200, or without one,
    `{ __typename }`. StartError if the process exits first or the deadline passes."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() - started < deadline_s:
            if process.poll() is not None:
                raise _exited(name, process, log_path)
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if await _answers(client, address, ready_path):
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
    raise StartError(f"{name} did not answer on {address.base_url} within {deadline_s} s")


def _exited(name: str, process: subprocess.Popen[bytes], log_path: Path | None) -> StartError:
    log = f":\n{log_path.read_text(errors='replace')[-3000:]}" if log_path else ""
    return StartError(f"{name} exited at start with status {process.returncode}{log}")


async def _answers(client: httpx.AsyncClient, address: Address, ready_path: str | None) -> bool:
    if ready_path is not None:
        return (await client.get(address.base_url + ready_path)).status_code == 200
    answer = await client.post(address.graphql_url, json={"query": "{ __typename }"})
    return bool(answer.json() == {"data": {"__typename": "Query"}})


@dataclass(frozen=True)
class ServerProcess(Address):
    """A server process, with its log and resident memory."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def rss_mib(self) -> float:
        """Resident memory of the process and its children."""
        process = psutil.Process(self.popen.pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return float(total) / 2**20


@contextlib.asynccontextmanager
async def serving(
    command: Sequence[str], env: dict[str, str], name: str, ready_path: str
) -> AsyncIterator[ServerProcess]:
    """Run `command --port <a free port>` until the block ends (then Ctrl-C, kill after
    30 s); the block starts once GET `ready_path` answers 200."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"shop-{name}-{port}.log"
    with log_path.open("wb") as output:
        popen = subprocess.Popen(  # noqa: ASYNC220 - a long-lived server, started once
            [*command, "--port", str(port)],
            env={**env, "SHOP_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = ServerProcess(Address.loopback(port).base_url, popen, log_path)
    try:
        await until_answering(popen, server, ready_path=ready_path, name=name, log_path=log_path)
        yield server
    finally:
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
