"""File locks that let processes share the servers of one data folder.

`.lock` is held exclusively while a process starts or stops the servers. `.users` is held
shared by every process using them. flock locks vanish with their process, even on SIGKILL,
so a killed user never keeps the servers alive nor blocks the others.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.embedded.system import EmbeddedError, logger

TRANSITION_TIMEOUT_S = 300.0


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class Lease:
    """This process's use of the servers in one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self._lock_path = data_dir / ".lock"
        self._users_path = data_dir / ".users"
        self._users_fd: int | None = None

    @property
    def joined(self) -> bool:
        """True between join() and leave()."""
        return self._users_fd is not None

    @contextmanager
    def transition(self, timeout_s: float = TRANSITION_TIMEOUT_S) -> Iterator[None]:
        """Hold `.lock` exclusively: no other process starts or stops the servers meanwhile."""
        fd = _open(self._lock_path)
        try:
            self._wait_for_lock(fd, timeout_s)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _wait_for_lock(self, fd: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting_logged = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if not waiting_logged:
                logger.info(
                    "waiting for another process starting or stopping the embedded servers (%s)",
                    self._lock_path,
                )
                waiting_logged = True
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"another process has held {self._lock_path} for more than "
                    f"{timeout_s:.0f} s while starting or stopping the servers"
                )
            time.sleep(0.05)

    def join(self) -> None:
        """Count this process as a user (shared lock on `.users`); call under transition()."""
        if self._users_fd is not None:
            return
        fd = _open(self._users_path)
        # Never blocks for long: an exclusive holder holds it only inside its own transition.
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._users_fd = fd

    def leave(self) -> None:
        """Stop counting this process as a user."""
        if self._users_fd is not None:
            fd, self._users_fd = self._users_fd, None
            os.close(fd)

    @contextmanager
    def unused(self) -> Iterator[bool]:
        """Yield True, holding `.users` exclusively, if no live process uses the servers."""
        fd = _open(self._users_path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
            else:
                yield True
        finally:
            os.close(fd)
