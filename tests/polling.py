"""The tests' one way to wait for something that happens in its own time: poll a condition
until it holds, and fail with what was awaited once a deadline has passed.

A test asserts on the condition, never on how long it took: the deadline only bounds a wait
that would otherwise hang, so it is generous, and the pause between polls is short.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["until", "until_blocking"]

T = TypeVar("T")


async def until(found: Callable[[], T | Awaitable[T]], seconds: float = 10.0,
                what: str = "the condition", *, interval: float = 0.02,
                context: Sequence[str] | None = None) -> T:
    """``found()``'s first truthy result (awaited when it is awaitable), polled every
    ``interval`` seconds; ``AssertionError`` naming ``what`` when none came within
    ``seconds``, with the last lines of ``context`` (a process's output) when given."""
    deadline = time.monotonic() + seconds
    while True:
        result = found()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            tail = "\n".join(list(context)[-20:]) if context else ""
            raise AssertionError(f"not within {seconds:g} s: {what}"
                                 + (f"; last output:\n{tail}" if tail else ""))
        await asyncio.sleep(interval)


def until_blocking(found: Callable[[], T], seconds: float = 10.0,
                   what: str = "the condition", *, interval: float = 0.1) -> T:
    """``until`` for tests without an event loop (the container tests drive podman)."""
    deadline = time.monotonic() + seconds
    while not (result := found()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(interval)
    return result
