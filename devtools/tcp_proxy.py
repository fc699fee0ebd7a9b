"""A loopback TCP proxy in front of a real server, to take it "down" without stopping it.

Down means what a client sees when a server's host fails: every open connection is cut,
and new ones are either refused (the host is up, the server is not) or black-holed (the
connection is accepted and then nothing ever answers, as behind a dead load balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from enum import Enum
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import make_url


class Outage(Enum):
    """How a proxy that is down treats new connections."""

    REFUSE = "refuse"
    BLACK_HOLE = "black hole"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server until told to go down; the server is at
    host:port, or at the Unix socket `host` when port is None."""

    def __init__(self, target_host: str, target_port: int | None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.outage: Outage | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def go_down(self, outage: Outage) -> None:
        """Cut every open connection; refuse or black-hole new ones until `come_up`."""
        self.outage = outage
        if outage is Outage.REFUSE and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._cut_all()

    async def come_up(self) -> None:
        """Forward new connections again (on the same port)."""
        self.outage = None
        self._cut_all()  # black-holed ones
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._cut_all()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.outage is Outage.BLACK_HOLE:
            return  # keep the socket open, read nothing, answer nothing
        try:
            upstream_reader, upstream_writer = await self._connect_upstream()
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        if self.outage is not None:  # went down while this one was connecting
            self._cut_all()
            return
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_port is None:
            return await asyncio.open_unix_connection(self.target_host)
        return await asyncio.open_connection(self.target_host, self.target_port)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side closes; then close the other side too."""
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()


@contextlib.asynccontextmanager
async def _running(proxy: TcpProxy) -> AsyncIterator[TcpProxy]:
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@contextlib.asynccontextmanager
async def postgres_behind_proxy(*urls: str) -> AsyncIterator[tuple[TcpProxy, list[str]]]:
    """A proxy in front of the PostgreSQL server of `urls` (one server, over TCP or a Unix
    socket), and each URL's database through the proxy."""
    parsed = [make_url(url) for url in urls]
    servers = {(u.host, u.port, u.query.get("host")) for u in parsed}
    assert len(servers) == 1, f"not one server: {servers}"
    host, port, socket_dir = servers.pop()
    target = (
        TcpProxy(f"{socket_dir}/.s.PGSQL.{port or 5432}", None)
        if isinstance(socket_dir, str)
        else TcpProxy(host or "127.0.0.1", port or 5432)
    )
    async with _running(target) as proxy:
        yield (
            proxy,
            [
                u.difference_update_query(["host"])
                .set(host="127.0.0.1", port=proxy.port)
                .render_as_string(hide_password=False)
                for u in parsed
            ],
        )


@contextlib.asynccontextmanager
async def redis_behind_proxy(url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the Redis server of `url` (redis:// or unix://), and the URL of the
    same database through the proxy."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    if parts.scheme == "unix":
        target = TcpProxy(parts.path, None)
        database = parse_qs(parts.query).get("db", ["0"])[0]
    else:
        target = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
        database = parts.path.strip("/") or "0"
    async with _running(target) as proxy:
        at = f"{credentials}@" if credentials else ""
        yield proxy, f"redis://{at}127.0.0.1:{proxy.port}/{database}"
