"""Log format for every process: time, level, logger, request id, message.

The request id lives in a context variable that the web layer sets per request and WebSocket.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("request_id", default="-")

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str = "info") -> None:
    """Send logs to stderr in one format; safe to call more than once."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(handler, "_shop", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdLogFilter())
    handler._shop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every log record so formats can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True
