"""``session_tree_root``: the root of a session's tree in Redis, whatever the storage layout.

Leaf journal (docs/leaf-journal.md): the root of every leaf stored so far, bulk-built from the
``:leaves`` hash. Go node layout: the ``:live_root`` the last commit wrote (the sealed ``:root``
when no live root is left). A session with a journal is read as a journal, whatever else exists.
"""

from __future__ import annotations

from redis.asyncio import Redis

from relayminer.keys import KeyBuilder, Namespace
from relayminer.smst.bulk import bulk_root
from relayminer.smst.journal import read_leaves
from relayminer.smst.nodes import PLACEHOLDER
from relayminer.smst.redis_store import RedisSMSTStore

__all__ = ["session_tree_root"]


async def session_tree_root(
    redis: Redis, supplier: str, session_id: str, namespace: Namespace | None = None
) -> bytes | None:
    """48-byte root (``hash || BE64 sum || BE64 count``) of the tree of every leaf stored for
    the session so far; None when no leaves are stored (in either layout)."""
    keys = KeyBuilder.for_client(redis, namespace)
    leaves = await read_leaves(redis, keys.smst_leaves_key(supplier, session_id))
    if leaves:
        return bulk_root(leaves)
    go = RedisSMSTStore(redis, supplier, keys=keys)
    root = await go.live_root(session_id) or await go.sealed_root(session_id)
    return None if root is None or root == PLACEHOLDER else root
