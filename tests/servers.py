"""Serve the application for a test: in-process with uvicorn, or as a `shop` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette

from app.config.settings import Settings
from app.web.asgi import create_app, server_options

STARTUP_DEADLINE_S = 90


@dataclass(frozen=True)
class ServerUnderTest:
    """Where a running server answers."""

    base_url: str
    app: Starlette

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://", 1)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    """Run the app in this event loop until the block ends; fail if it does not start."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
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
            yield ServerUnderTest(f"http://127.0.0.1:{port}", app)
        finally:
            server.should_exit = True
            await task


def wait_for_graphql(port: int, process: subprocess.Popen[bytes]) -> float:
    """Seconds until `{ __typename }` answers; fails if the process dies first."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_DEADLINE_S:
        assert process.poll() is None, f"shop exited early with {process.returncode}"
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=2
            )
            if response.json() == {"data": {"__typename": "Query"}}:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no answer on port {port} within {STARTUP_DEADLINE_S} s")
