"""Many Redis script calls in one round trip: the lifecycle's writes of a claim or proof group.

redis-py's asyncio client spends about 150 µs of CPU per command on this machine class, and
about 10 µs per command sent in a pipeline (``docs/lifecycle.md``, "Capacity of one replica").
A replica owning 1,000 suppliers must so write a group of sessions in one round trip, not one
per session: :func:`run_script_calls` sends every call in one non-transactional pipeline and
returns each call's reply *or its error*, so one failed call never hides the others' outcomes.

redis-py's own pipeline script support asks the server ``SCRIPT EXISTS`` before every pipeline
that holds a script: one more round trip per group (about 5% of the py-spy samples of a
1,000-supplier scale run; ``docs/lifecycle.md``, "Capacity of one replica"). Here the pipeline
starts with one ``SCRIPT LOAD`` per distinct script (the server hashes the body and finds it
known, a few microseconds; its reply is dropped) and sends each call as ``EVALSHA``: one round
trip, and the calls run in their order even on a server that lost its scripts (restarted,
``SCRIPT FLUSH``). A script the server refuses to load fails each of its calls (``NOSCRIPT``),
as any per-call error.

A Redis Cluster pipeline refuses scripts (redis-py), so with ``one_by_one`` (the hash-tagged
key layout) the calls run one after the other, with the same per-call outcomes.

A transport error (connection lost, timeout) fails the whole batch: the caller cannot know
which calls ran, exactly as for a single call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from relayminer.errors import LeaseLostError

__all__ = ["ScriptCall", "raise_failed", "run_script_calls"]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of a registered script."""

    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]


async def run_script_calls(
    redis: Redis, calls: Sequence[ScriptCall], *, one_by_one: bool = False
) -> list[Any]:
    """Each call's reply, or the :class:`ResponseError` it raised, in call order.

    Transport errors (:class:`redis.exceptions.ConnectionError`, ``OSError``, timeouts) are
    raised: the outcome of every call is then unknown.
    """
    if not calls:
        return []
    if one_by_one:
        replies: list[Any] = []
        for call in calls:
            try:
                replies.append(await call.script(keys=list(call.keys), args=list(call.args)))
            except ResponseError as err:
                replies.append(err)
        return replies
    bodies = {call.script.sha: call.script.script for call in calls}  # one load per script
    async with redis.pipeline(transaction=False) as pipe:
        for body in bodies.values():
            pipe.script_load(body)
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies = await pipe.execute(raise_on_error=False)
    return list(replies[len(bodies) :])


def raise_failed(replies: Sequence[Any], lease_lost: str) -> None:
    """For writes that must all succeed: raise the first error among ``replies``, as
    :class:`LeaseLostError` (message ``lease_lost``) when a fenced script refused it."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            if "FENCED" in str(reply):
                raise LeaseLostError(lease_lost) from reply
            raise reply
