"""The pipeline in a child process of `shop serve`: the outbox relay and the projectors run
as `shop worker`, off the API's event loop, so a mutation never waits behind projection work
and each gets a core of its own. The user still starts one command.

The child is restarted when it dies (backing off like the in-process loops), stopped when
`serve` stops, and ends with `serve` even if `serve` is killed (Linux: PR_SET_PDEATHSIG).
It runs in its own session, so a Ctrl-C in the terminal reaches `serve` only, which stops it
after the API has drained.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from app.config.settings import Role, Settings

log = logging.getLogger("app.runtime.pipeline_process")

COMMAND = (sys.executable, "-m", "app", "worker")
_HEALTHY_S = 60.0  # a child that ran this long starts the backoff afresh
_MAX_BACKOFF_S = 30.0
_STOP_TIMEOUT_S = 20.0  # the worker's own shutdown is bounded at 15 s (app/runtime/worker.py)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PipelineProcess:
    """One `shop worker` child, kept running until `stop`."""

    def __init__(self, command: Sequence[str] = COMMAND, env: dict[str, str] | None = None):
        self.command = list(command)
        self.env = env
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="pipeline-process")

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self.child = subprocess.Popen(
                self.command,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only prctl: safe with threads
            )
            self.starts += 1
            return self.child

    def _supervise(self) -> None:
        backoff = 1.0
        while (child := self._spawn()) is not None:
            started = time.monotonic()
            code = child.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > _HEALTHY_S:
                backoff = 1.0
            log.error(
                "the pipeline process (shop worker, pid %d) exited with %s; starting it again "
                "in %.0f s",
                child.pid, code, backoff,
            )  # fmt: skip
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def stop(self) -> None:
        """Stop the child (SIGTERM; SIGKILL if it has not ended in time) and its supervisor."""
        with self._lock:
            self._stopping.set()
            child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the pipeline process did not stop in %.0f s: killed", _STOP_TIMEOUT_S)
                child.kill()
                child.wait()
        if self._thread.is_alive():
            self._thread.join()


def runs_in_child(settings: Settings) -> bool:
    """Whether `shop serve` runs the pipeline as a child process (else nowhere, or on the
    API's event loop: app/web/asgi.py)."""
    return settings.role is Role.ALL and settings.pipeline_process


@contextmanager
def pipeline_process(settings: Settings) -> Iterator[PipelineProcess | None]:
    """The pipeline's child process while the block runs, when `settings` ask for one. The
    child reads the resolved stores from the environment (`export_urls`)."""
    if not runs_in_child(settings):
        yield None
        return
    process = PipelineProcess(env=dict(os.environ))
    process.start()
    try:
        yield process
    finally:
        process.stop()
