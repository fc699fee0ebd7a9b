"""`shop` subprocesses on a set of stores: started with their own log files, killed as a
crash would, restarted at will, and stopped at the end."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT_S = 15


class StartError(RuntimeError):
    """A process or server did not start; the message says why."""


def installed(program: str) -> Path | None:
    """The program next to this interpreter (a virtualenv's own, found without activating
    it), else the one on PATH."""
    found = shutil.which(program, path=str(Path(sys.executable).parent)) or shutil.which(program)
    return None if found is None else Path(found)


def shop_command() -> Path:
    """The `shop` console script next to this interpreter, else the one on PATH."""
    found = installed("shop")
    if found is None:
        raise StartError("no `shop` command: install the project (pip install -e .)")
    return found


def environment_without_settings() -> dict[str, str]:
    """This process's environment without any SHOP_* setting of the user's (a token secret,
    say, would lock a run's own clients out)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}


class ShopProcesses:
    """Named `shop` processes with one environment, each logging to `<log_dir>/<name>.log`."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._command = shop_command()
        self._worker_names = (f"worker-{n}" for n in itertools.count(1))

    def start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        """Start `shop <arguments>` as `name` (its log goes on where a killed one's ended)."""
        with self.log_path(name).open("ab") as log:
            process = subprocess.Popen(
                [self._command, *arguments],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C is for the caller to handle
            )
        self.processes[name] = process
        return process

    def start_worker(self) -> str:
        """Start one more `shop worker`; its name."""
        name = next(self._worker_names)
        self.start(name, "worker")
        return name

    def running_workers(self) -> list[str]:
        return [n for n, p in self.processes.items() if n.startswith("worker") and p.poll() is None]

    def kill(self, name: str) -> int:
        """kill -9, as a crash would; returns the pid."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return process.pid

    def exited_on_their_own(self) -> list[str]:
        gone = {name: p.poll() for name, p in self.processes.items()}
        return [f"{name} (status {code})" for name, code in gone.items() if code is not None]

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what is still there after STOP_TIMEOUT_S."""
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            process.kill()  # nothing if it has exited
            process.wait()
        self.processes.clear()
