"""Embedded PostgreSQL and Redis servers, supervised under a data folder and shared safely
between the processes that use them."""

from app.embedded.servers import EmbeddedServers, EmbeddedUrls
from app.embedded.system import EmbeddedError

__all__ = ["EmbeddedError", "EmbeddedServers", "EmbeddedUrls"]
