"""Processes the benchmark starts: launch, wait until ready, measure CPU, always stop.

Every process goes into one ``Processes`` registry, which ``run.py`` closes in a ``finally``
(also on Ctrl-C): SIGTERM, a bounded wait, then SIGKILL, for each process group it started
and for nothing else. CPU time is read from ``/proc/<pid>/stat`` (utime + stime, in clock
ticks) for a process and its descendants only, so a row charges the proxy, not wrk or the
backend sharing the same two cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Processes", "Started", "cpu_seconds", "free_port", "wait_port"]

_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for programs that cannot report a port-0 bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and all of its live descendants."""
    kids = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(kids.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of each live pid in ``pids``, in seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total / _TICKS


@dataclass
class Started:
    """One started program; ``line`` is the readiness line it printed (if any)."""

    name: str
    proc: subprocess.Popen[str]
    line: str = ""
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds of the process and its descendants (workers) so far."""
        return cpu_seconds(tree(self.pid))


class Processes:
    """Starts programs in their own process group and stops every one of them."""

    def __init__(self) -> None:
        self._started: list[Started] = []

    def start(self, name: str, args: Sequence[str], *, ready: str | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 30.0) -> Started:
        """Launch ``args``; with ``ready``, wait for a stdout line starting with it."""
        proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=cwd, start_new_session=True)
        started = Started(name, proc)
        self._started.append(started)
        threading.Thread(target=self._drain_stderr, args=(started,), daemon=True).start()
        if ready is None:
            threading.Thread(target=self._drain_stdout, args=(proc,), daemon=True).start()
            return started
        result: list[str] = []
        reader = threading.Thread(target=self._await_line, args=(proc, ready, result),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            tail = " | ".join(started.stderr_tail[-5:])
            raise RuntimeError(f"{name} did not start within {timeout:g} s: {tail[-600:]}")
        started.line = result[0]
        threading.Thread(target=self._drain_stdout, args=(proc,), daemon=True).start()
        return started

    @staticmethod
    def _await_line(proc: subprocess.Popen[str], ready: str, result: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(ready):
                result.append(line.strip())
                return

    @staticmethod
    def _drain_stdout(proc: subprocess.Popen[str]) -> None:
        # A full pipe would block the program; what it prints after readiness is not needed.
        if proc.stdout is not None:
            for _ in proc.stdout:
                pass

    @staticmethod
    def _drain_stderr(started: Started) -> None:
        if started.proc.stderr is not None:
            for line in started.proc.stderr:
                started.stderr_tail.append(line.rstrip())
                del started.stderr_tail[:-20]

    def stop(self, started: Started, grace: float = 10.0) -> None:
        """SIGTERM the program's process group, then SIGKILL after ``grace`` seconds."""
        proc = started.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if started in self._started:
            self._started.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self._started)):
            try:
                self.stop(started)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"bench: could not stop {started.name} ({exc})", file=sys.stderr)
