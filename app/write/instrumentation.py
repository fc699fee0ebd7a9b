"""What is seen of every command from outside: a log line, and metrics by name and outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.write.domain.errors import Rejected

log = logging.getLogger("app.commands")


@contextmanager
def logged(name: str) -> Iterator[None]:
    """One log line per command: name, outcome and time (the log format adds the request id)."""
    started = time.perf_counter()
    try:
        yield
    except Rejected as rejected:
        codes = ",".join(sorted({error.code.value for error in rejected.errors}))
        log.info("%s rejected (%s) in %.1f ms", name, codes, _ms(started))
        raise
    except Exception:
        log.exception("%s failed after %.1f ms", name, _ms(started))
        raise
    log.info("%s accepted in %.1f ms", name, _ms(started))


class CommandMetrics:
    """Counts and times commands by name and outcome (accepted, the error code, or error)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("command", "outcome")
        self.count = Counter("shop_commands", "Commands dispatched", labels, registry=registry)
        self.latency = Histogram(
            "shop_command_seconds", "Command latency", labels, registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip

    @contextmanager
    def measured(self, name: str) -> Iterator[None]:
        """Count and time what runs inside, under the command's name and its outcome."""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "accepted"
        except Rejected as rejected:
            outcome = rejected.errors[0].code.value.lower()
            raise
        finally:
            self.count.labels(name, outcome).inc()
            self.latency.labels(name, outcome).observe(time.perf_counter() - started)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
