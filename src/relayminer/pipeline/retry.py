"""Which Redis failures are the infrastructure's, and retrying them in place.

An infrastructure error says nothing about the entries being processed: Redis is out of memory
(``OOM``), loading its dataset (``LOADING``), a read-only replica (``READONLY``), running a long
script (``BUSY``), without a primary (``MASTERDOWN``, ``CLUSTERDOWN``, ``TRYAGAIN``), or the
connection failed or timed out. The worker retries the step in hand, in the process, with capped
exponential backoff: it does not re-read its pending entries nor add deliveries, so an outage
can never push good relays to the dead-letter stream. Any other error is the batch's own and is
handled by the worker (``docs/failure-behaviour.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relayminer import metrics
from relayminer.runtime.aio import wait_or_stop

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Error reply prefixes of a server that cannot serve now, whatever the command.
INFRASTRUCTURE_REPLIES = (
    "OOM",
    "LOADING",
    "READONLY",
    "BUSY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "NOREPLICAS",
)


def is_infrastructure_error(err: BaseException) -> bool:
    """True for errors of the server or the network, not of the data being written."""
    if isinstance(
        err,
        RedisConnectionError
        | RedisTimeoutError
        | OSError
        | asyncio.TimeoutError
        | OutOfMemoryError
        | BusyLoadingError
        | ReadOnlyError,
    ):
        return True
    if isinstance(err, ResponseError):
        text = str(err)
        # A script's error carries the command's reply after a prefix ("Error running script
        # ...: @user_script:..: OOM command not allowed ..."), so look at every word start.
        words = text.replace(":", " ").split()
        return any(w in INFRASTRUCTURE_REPLIES for w in words[:40]) or (
            "command not allowed when used memory" in text
        )
    return False


class Backoff:
    """Capped exponential backoff: ``first``, 2x ... up to ``cap`` seconds."""

    def __init__(self, first: float = 0.05, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


async def retry_infrastructure(
    op: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    what: str,
    supplier: str,
    backoff: Backoff | None = None,
) -> T:
    """Run ``op`` until it succeeds, retrying infrastructure errors with capped backoff. Other
    errors, and an infrastructure error once ``stop`` is set, propagate."""
    backoff = backoff or Backoff()
    while True:
        try:
            return await op()
        except Exception as err:
            if not is_infrastructure_error(err) or stop.is_set():
                raise
            delay = backoff.next()
            metrics.RETRIES.labels(supplier=supplier, operation=what).inc()
            metrics.RECONNECTS.labels(component="relay_worker").inc()
            log.warning(
                "redis cannot serve now, retrying in place",
                extra={"supplier": supplier, "step": what, "backoff_s": delay, "error": repr(err)},
            )
            await wait_or_stop(stop, delay)
