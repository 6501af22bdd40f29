"""Small test utilities shared by the suites (no sleeping: barriers and gathers only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def release_together(n: int, task: Callable[[int], Awaitable[T]]) -> list[T]:
    """Start ``n`` tasks, hold them at a barrier until all are ready, then release them at once.

    Returns their results in index order; the first exception propagates.
    """
    barrier = asyncio.Barrier(n)

    async def run(i: int) -> T:
        await barrier.wait()
        return await task(i)

    return list(await asyncio.gather(*(run(i) for i in range(n))))
