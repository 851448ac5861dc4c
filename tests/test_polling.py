"""``polling.until``: the first truthy result, sync or async, or a failure naming what was
awaited."""

from __future__ import annotations

import itertools

import pytest

from polling import until, until_blocking


async def test_the_first_truthy_result_is_returned() -> None:
    counter = itertools.count()
    assert await until(lambda: next(counter) >= 3 and "done", 5, interval=0) == "done"


async def test_an_async_condition_is_awaited() -> None:
    calls: list[int] = []

    async def check() -> list[int]:
        calls.append(1)
        return calls if len(calls) == 2 else []

    assert await until(check, 5, interval=0) == [1, 1]


async def test_a_condition_never_met_fails_with_what_and_the_last_output() -> None:
    output = [f"line {n}" for n in range(30)]
    with pytest.raises(AssertionError) as caught:
        await until(lambda: None, 0, "the answer", context=output)
    assert str(caught.value) == ("not within 0 s: the answer; last output:\n"
                                 + "\n".join(output[-20:]))


def test_the_blocking_twin_returns_the_first_truthy_result_or_fails_naming_what() -> None:
    counter = itertools.count()
    assert until_blocking(lambda: next(counter) >= 2 and "done", 5, interval=0) == "done"
    with pytest.raises(AssertionError, match="not within 0 s: never"):
        until_blocking(lambda: 0, 0, "never", interval=0)
