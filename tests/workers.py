"""`shop worker` (or other `shop`) subprocesses on a test's stores, to kill and restart at will."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class Workers:
    """A set of running `shop worker` processes."""

    def __init__(self, shop_bin: Path, env: dict[str, str], log_dir: Path) -> None:
        self.shop_bin = shop_bin
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self, *command: str) -> subprocess.Popen[bytes]:
        """Start `shop worker`, or the `shop` command given (`serve --port 8123`, say)."""
        self.started += 1
        with (self.log_dir / f"worker-{self.started}.log").open("wb") as log:
            process = subprocess.Popen(
                [self.shop_bin, *(command or ("worker",))],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """kill -9, as a crash would."""
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.processes.remove(process)

    def stop_all(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    def logs(self) -> str:
        return "\n".join(
            path.read_text()[-3000:] for path in sorted(self.log_dir.glob("worker-*.log"))
        )
