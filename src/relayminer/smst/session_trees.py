"""What the lifecycle needs of a session tree store, and the one place that picks the store for
a layout (``smst.layout``; :mod:`relayminer.smst.layout`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from redis.asyncio import Redis

from relayminer.errors import RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.runtime.tree_builder import TreeBuilder
from relayminer.smst.journal_trees import JournalTrees
from relayminer.smst.layout import SMSTLayout
from relayminer.smst.proof import ClosestProof
from relayminer.smst.redis_store import RedisSMSTStore

__all__ = ["SessionTrees", "open_session_trees"]


class SessionTrees(Protocol):
    """Seal, prove and drop the trees of one supplier's sessions (either layout)."""

    #: True when a sealed tree and its session's counters are written by one atomic step, so
    #: they must be equal (journal); False when the tree may run ahead of the counters (Go).
    exact_counters: bool

    async def seal(self, sid: str) -> bytes: ...

    async def sealed_root(self, sid: str) -> bytes | None: ...

    async def prove_closest(self, sid: str, path: bytes) -> tuple[bytes, ClosestProof]: ...

    async def prove_closest_many(
        self, sid: str, paths: Sequence[bytes]
    ) -> tuple[bytes, list[ClosestProof]]: ...

    async def delete(self, sid: str) -> None: ...

    # A claim or proof group at once (the journal layout: a fixed number of round trips).
    async def seal_many(self, sids: Sequence[str]) -> dict[str, bytes | RelayMinerError]: ...

    async def prove_group(
        self, paths: Mapping[str, bytes]
    ) -> dict[str, tuple[bytes, ClosestProof] | RelayMinerError]: ...

    async def delete_many(self, sids: Sequence[str]) -> None: ...

    #: whether :meth:`prebuild_many` builds anything (the journal layout)
    builds_ahead: bool

    async def prebuild_many(
        self, sids: Sequence[str], *, deadline: float | None = None
    ) -> list[str]: ...

    def forget(self, sid: str) -> None: ...


def open_session_trees(
    layout: SMSTLayout,
    redis: Redis,
    supplier: str,
    *,
    keys: KeyBuilder,
    ttl_seconds: int,
    fence: Fence | None,
    builder: TreeBuilder | None = None,
) -> JournalTrees | RedisSMSTStore:
    """The tree store of ``layout`` for the lifecycle of ``supplier`` (the journal layout's
    trees are built by ``builder``; the Go layout's live in Redis and are not built)."""
    if SMSTLayout(layout) is SMSTLayout.JOURNAL:
        return JournalTrees(
            redis, supplier, keys=keys, ttl_seconds=ttl_seconds, fence=fence, builder=builder
        )
    return RedisSMSTStore(redis, supplier, keys=keys, ttl_seconds=ttl_seconds, fence=fence)
