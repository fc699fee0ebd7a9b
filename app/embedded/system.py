"""What the embedded servers share: the error type, subprocesses, process checks and folders."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger("app.embedded")

SERVER_USER = "embedded_postgres"
LOG_TAIL_LINES = 20
# sun_path holds 108 bytes on Linux (104 on macOS); keep a margin.
MAX_SOCKET_PATH_BYTES = 100


class EmbeddedError(RuntimeError):
    """An embedded server could not be prepared, started, reused or stopped."""


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, indented for an error message."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "    (no log written)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (log is empty)"


def failure(what: str, log: Path) -> EmbeddedError:
    """An EmbeddedError saying what failed, where its log is and how the log ends."""
    return EmbeddedError(f"{what}; log: {log}, last lines:\n{log_tail(log)}")


@dataclass(frozen=True)
class RunAs:
    """The account a server runs as; `name` is None for the current user."""

    uid: int
    gid: int
    name: str | None

    @classmethod
    def current(cls) -> RunAs:
        """The user running this process."""
        return cls(os.geteuid(), os.getegid(), None)

    @classmethod
    def for_postgres(cls) -> RunAs:
        """The current user, or the `embedded_postgres` system user under root (PostgreSQL
        refuses to run as root)."""
        if os.geteuid() != 0:
            return cls.current()
        entry = _ensure_system_user(SERVER_USER)
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)

    def chown(self, path: Path) -> None:
        """Give `path` to this account when it is not the current user."""
        if self.name is not None:
            os.chown(path, self.uid, self.gid)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    # Same effect as embedded_postgres.utils.ensure_user_exists, whose import warns about
    # XDG_RUNTIME_DIR (platformdirs), which test suites with filterwarnings=error reject.
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    logger.info("creating system user %s to run PostgreSQL as", name)
    run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        what=f"creating system user {name!r}",
    )
    return pwd.getpwnam(name)


def _client_env() -> dict[str, str]:
    # PGHOST, PGDATABASE, PGOPTIONS... in the caller's environment must not redirect our tools.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def run(
    args: Sequence[str | Path],
    *,
    what: str,
    user: RunAs | None = None,
    cwd: Path | None = None,
    timeout_s: float = 90,
    log: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own session, its output captured; raise EmbeddedError on failure."""
    as_other = user is not None and user.name is not None
    # Output goes to a file, not a pipe: a daemon inheriting a pipe would make run() hang.
    with tempfile.TemporaryFile("w+", errors="replace") as output:
        try:
            result = subprocess.run(
                [str(arg) for arg in args],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=_client_env(),
                timeout=timeout_s,
                text=True,
                check=False,
                start_new_session=True,
                user=user.uid if user and as_other else None,
                group=user.gid if user and as_other else None,
                extra_groups=[] if as_other else None,  # drop root's supplementary groups
            )
        except subprocess.TimeoutExpired as error:
            raise _run_error(f"{what}: no result within {timeout_s:.0f} s", "", log) from error
        except OSError as error:
            raise EmbeddedError(f"{what}: cannot run {args[0]}: {error}") from error
        output.seek(0)
        result.stdout = output.read()
    if check and result.returncode != 0:
        raise _run_error(f"{what} failed (exit {result.returncode})", result.stdout, log)
    return result


def _run_error(message: str, output: str, log: Path | None) -> EmbeddedError:
    lines = output.strip().splitlines()[-LOG_TAIL_LINES:]
    if lines:
        message += ":\n" + "\n".join("    " + line for line in lines)
    return failure(message, log) if log is not None else EmbeddedError(message)


def read_pid(pidfile: Path) -> int | None:
    """The pid on the first line of a pid file, or None if there is none."""
    try:
        first = pidfile.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() and int(first) > 0 else None


def server_running(pid: int, name: str, cwd: Path | None) -> bool:
    """True if `pid` is a live (not zombie) `name` process working in `cwd` (if given).

    A stale pid file may name a pid the kernel has since given to another process.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != name:
            return False
        if cwd is None:
            return True
        try:
            return Path(process.cwd()) == cwd
        except psutil.AccessDenied:
            return True  # another user's server: trust the name
    except psutil.Error:
        return False


def wait_until_gone(pid: int, name: str, cwd: Path, timeout_s: float) -> bool:
    """Wait for a server process to exit; False if it is still running after the timeout."""
    deadline = time.monotonic() + timeout_s
    while server_running(pid, name, cwd):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def socket_dir_for(data_dir: Path) -> Path:
    """`<data_dir>/run`, or a folder in /tmp named by a hash when that path is too long."""
    local = data_dir / "run"
    if len(os.fsencode(local / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH_BYTES:
        return local
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path("/tmp") / f"shop-embedded-{digest}"


def prepare_socket_dir(path: Path, owner: RunAs | None) -> None:
    """Create the private socket folder; give it to `owner` if given."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    # In /tmp anyone could have made the folder first: use it only if it is ours.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in {os.geteuid(), _server_uid()}:
        raise EmbeddedError(f"socket folder {path} is not a folder owned by this user")
    if owner is not None:
        owner.chown(path)
    path.chmod(0o700)


def _server_uid() -> int:
    try:
        return pwd.getpwnam(SERVER_USER).pw_uid
    except KeyError:
        return os.geteuid()


def grant_traversal(path: Path, user: RunAs) -> None:
    """Let `user` reach `path`: add o+x (never read bits) to ancestors lacking it."""
    if user.name is None:
        return
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            logger.warning("added o+x to %s so that user %s can reach %s", folder, user.name, path)
