"""``server.pid_file``: the running gateway's pid, locked while it runs (docs/operations.md).

The lock, not the file's existence, says whether a gateway runs: ``flock`` is released by
the kernel when the process dies, even by ``kill -9``, so a stale file never blocks a
start. The process that serves (the single process, or the supervisor of several workers)
takes it before it binds anything; a second gateway with the same file refuses to start.
``gateway reload`` and ``gateway stop`` read the pid from a file whose lock is held, so
they only ever signal a gateway that is running now, never a pid reused by another
program or another user's gateway.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from pathlib import Path

__all__ = ["PidFile", "PidFileError", "running_pid"]


class PidFileError(Exception):
    """The pid file cannot be taken (another gateway holds it) or read."""


class PidFile:
    """The lock on ``path``, held from ``acquire`` to ``release`` (or the process's end)."""

    def __init__(self, path: Path, config: Path | None = None) -> None:
        self.path = path
        self._config = config  # named in the refusal: `gateway stop -c` with it finds the holder
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the file and write this process's pid; raises PidFileError."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PidFileError(f"server.pid_file: cannot create {self.path.parent}: "
                               f"{exc.strerror}") from None
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise PidFileError(f"server.pid_file: cannot open {self.path}: "
                                   f"{exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                holder = f"pid {pid}" if pid else "another process"
                config = shlex.quote(str(self._config)) if self._config else "CONFIG"
                raise PidFileError(
                    f"another gateway ({holder}) is running with server.pid_file "
                    f"{self.path}; stop it first (`gateway stop -c {config}`) or give this "
                    f"one its own server.pid_file") from None
            # The file may have been unlinked by a gateway that stopped between our open
            # and our lock: then this lock guards nothing. Open the path again.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise PidFileError(f"server.pid_file: {self.path} keeps being replaced")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the file (while still holding it) and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def running_pid(path: Path) -> int | None:
    """The pid of the gateway holding ``path`` now, or None when none does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        try:
            # A shared lock is granted only while no gateway holds its exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            if pid is None:
                raise PidFileError(f"{path} is locked but holds no pid yet; try again") \
                    from None
            return pid
        return None
    finally:
        os.close(fd)
