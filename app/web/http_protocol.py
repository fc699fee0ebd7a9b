"""uvicorn's HTTP protocol, with each response sent in one write.

uvicorn writes a response's head when the app sends `http.response.start` and its body when
the app sends `http.response.body`: two socket writes, two system calls, for every response.
On this kind of machine a system call costs tens of microseconds, a tenth of what the
compiled read path spends on a whole `order(id)`. Here the writes made in one step of the
event loop are joined and sent at the end of it: the head and body of a response (sent one
after the other, with nothing awaited between) leave in one write. Nothing waits longer than
that step, and a connection upgraded to a WebSocket gets the plain transport back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescedWrites:
    """A transport whose writes within one step of the event loop go out as one."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Send what was written and not sent yet, in one write."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Reading, flow control, extra info: the socket's own transport answers.
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose responses leave in one write (`http=` of uvicorn's Config)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        coalesced: Any = self.transport
        coalesced.flush()
        self.transport = coalesced.transport
        super().handle_websocket_upgrade()
