"""Waiting for the simulated chain's next block: in process, through pub/sub, or by polling.

A producer in this process wakes its waiters directly (:meth:`BlockWaiter.notify`); blocks
produced by another process are announced on ``KeyBuilder.block_event_channel()``, which a
background subscriber turns into the same wake-up; a poll every ``poll_interval`` seconds is
the fallback when the subscription fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer.chain.base import Block
from relayminer.chain.sim.errors import SimChainNotInitialisedError

__all__ = ["GENESIS_HEIGHT", "BlockWaiter"]

log = logging.getLogger(__name__)

GENESIS_HEIGHT = 1


class BlockWaiter:
    """``wait_for_block`` and ``blocks`` of :class:`~relayminer.chain.sim.chain.SimulatedChain`."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        poll_interval: float,
        latest_block: Callable[[], Awaitable[Block]],
        block: Callable[[int], Awaitable[Block]],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._poll_interval = poll_interval
        self._latest_block = latest_block
        self._block = block
        self._block_event = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closed = False

    def notify(self) -> None:
        """Wake every waiter (a block was committed)."""
        event = self._block_event
        self._block_event = asyncio.Event()
        event.set()

    async def close(self) -> None:
        """Stop the subscriber task; later waits poll only."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        try:
            pubsub = self._redis.pubsub()
        except (RedisError, OSError) as err:  # pragma: no cover - constructor does no I/O
            log.warning("simulated chain: block subscription failed", extra={"error": str(err)})
            self._subscribed.set()
            return
        try:
            await pubsub.subscribe(self._channel)
            self._subscribed.set()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    self.notify()
        except (RedisError, OSError) as err:
            log.warning(
                "simulated chain: block subscription failed, polling instead",
                extra={"error": str(err)},
            )
        finally:
            self._subscribed.set()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _ensure_listener(self) -> None:
        if self._closed:
            return
        if self._listener is None or self._listener.done():
            if self._listener is not None:  # it failed: retry the subscription
                self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="simchain-block-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), self._poll_interval)

    async def wait_for_block(
        self,
        min_height: int,
        timeout: float | None = None,  # noqa: ASYNC109 - the Chain protocol's signature
    ) -> Block:
        """Wait until a block at ``min_height`` or above is committed; return the newest block.

        Raises ``TimeoutError`` after ``timeout`` seconds. Before genesis it keeps waiting.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        await self._ensure_listener()  # subscribe first, then read: no notice can slip by
        while True:
            event = self._block_event
            try:
                block: Block | None = await self._latest_block()
            except SimChainNotInitialisedError:
                block = None  # the producer has not created genesis yet: keep waiting
            if block is not None and block.height >= min_height:
                return block
            wait = self._poll_interval
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    latest = "none" if block is None else block.height
                    raise TimeoutError(
                        f"no block at height >= {min_height} within {timeout} s (latest {latest})"
                    )
                wait = min(wait, remaining)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)

    async def blocks(self, from_height: int) -> AsyncIterator[Block]:
        """Every committed block from ``from_height`` on, in order (waits for new ones)."""
        height = max(from_height, GENESIS_HEIGHT)
        while True:
            latest = await self.wait_for_block(height)
            for h in range(height, latest.height + 1):
                yield await self._block(h)
            height = latest.height + 1
