"""Subprocesses for the end-to-end tests: the gateway's own commands, HAProxy.

``CapturedProcess`` starts a command in its own process group (a supervisor's workers die
with it), collects its stdout and stderr lines on a thread, and waits for what it prints
with a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polling import until

__all__ = ["CapturedProcess", "GatewayProcess", "gateway_command"]


class CapturedProcess:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict[str, Any]]:
        """The JSON lines printed so far (logs, access log)."""
        return [json.loads(x) for x in list(self.lines) if x.startswith("{")]

    def reason(self, reason_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("reason_id") == reason_id]

    async def wait_for(self, found: Callable[[], Any], seconds: float = 20.0) -> Any:
        """``found()``'s first truthy result, polled until the deadline; fails at once, with
        the last output, when the process has ended without it."""

        def found_while_running() -> Any:
            result = found()
            assert result or self.process.poll() is None or found(), \
                "\n".join(self.lines[-20:])
            return result

        return await until(found_while_running, seconds, "the process's output",
                           interval=0.05, context=self.lines)

    async def line(self, prefix: str, seconds: float = 20.0) -> str:
        """The first line printed that starts with ``prefix``."""
        return str(await self.wait_for(
            lambda: next((x for x in list(self.lines) if x.startswith(prefix)), None), seconds))

    async def serving(self, seconds: float = 20.0) -> dict[str, int]:
        """The ports of ``gateway serving (https=P, http=P, admin=P)``."""
        line = await self.line("gateway serving", seconds)
        inside = line[line.index("(") + 1: line.index(")")]
        return {k: int(v) for k, v in (item.split("=") for item in inside.split(", "))}

    def kill(self) -> None:
        """SIGKILL to the whole process group, then reap and close."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def gateway_command(*args: str) -> CapturedProcess:
    """``python -m gateway ARGS``."""
    return CapturedProcess([sys.executable, "-m", "gateway", *args])


class GatewayProcess(CapturedProcess):
    """``gateway serve -c CONFIG``."""

    def __init__(self, config: Path) -> None:
        super().__init__([sys.executable, "-m", "gateway", "serve", "-c", str(config)])
