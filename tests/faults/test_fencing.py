"""Issue 9 item 5: a stale owner's every lifecycle write is refused inside the script that
writes, and changes nothing (both backends)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relayminer.errors import LeaseLostError
from relayminer.lifecycle.rebroadcast import CLAIM, RebroadcastEntry, RebroadcastStore
from relayminer.runtime.leases import Fence
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.redis_store import RedisSMSTStore
from tests.conftest import RedisBackend

SUP = "pokt1fenced"
LEASE = f"ha:miner:claim:{SUP}"


def snapshot(sid: str = "sess-1") -> SessionSnapshot:
    return SessionSnapshot(
        session_id=sid,
        supplier_operator_address=SUP,
        service_id="svc",
        application_address="pokt1app",
        session_start_height=1,
        session_end_height=10,
        state=SessionState.ACTIVE,
    )


async def dump(backend: RedisBackend) -> dict[bytes, Any]:
    r = backend.client
    out: dict[bytes, Any] = {}
    for key in sorted(await r.keys("*")):
        kind = await r.type(key)
        if kind == b"hash":
            out[key] = await r.hgetall(key)
        elif kind == b"set":
            out[key] = await r.smembers(key)
        elif kind == b"string":
            out[key] = await r.get(key)
    return out


async def test_every_lifecycle_write_of_a_stale_owner_is_refused(backend: RedisBackend) -> None:
    r = backend.client
    fence = Fence(LEASE, "token-old")
    await r.set(LEASE, "token-old")
    store = RedisSessionStore(r, SessionStoreConfig(SUP), fence=fence)
    coord = SessionCoordinator(store, SUP)
    trees = RedisSMSTStore(r, SUP, fence=fence)
    rebroadcasts = RebroadcastStore(r, SUP, fence=fence)
    # Everything works while the lease is ours.
    await store.save(snapshot())
    await store.create_if_absent(snapshot("sess-2"))
    await coord.on_relay_processed("sess-1", 5, SUP, "svc", "pokt1app", 1, 10)
    await trees.apply("sess-1", [(b"k" * 32, b"v", 5)])
    entry = RebroadcastEntry("sess-1", b"msg", 10, "tx", "tx", "svc")
    await rebroadcasts.put(CLAIM, 10, entry)
    await r.set(LEASE, "token-new")  # another replica took the lease
    before = await dump(backend)
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: store.save(snapshot()),
        lambda: store.create_if_absent(snapshot("sess-3")),
        lambda: store.update_state("sess-1", SessionState.CLAIMING),
        lambda: store.update_settlement_metadata("sess-1", "settled_proven", 20),
        lambda: store.update_wal_position("sess-1", "1-0"),
        lambda: store.increment_relay_count("sess-1", 5),
        lambda: store.delete("sess-2"),
        lambda: coord.on_relay_processed("sess-1", 5, SUP, "svc", "pokt1app", 1, 10),
        lambda: coord.on_session_claimed("sess-1", b"r" * 48, "claim-tx"),
        lambda: coord.on_proof_submitted("sess-1", "proof-tx"),
        lambda: coord.on_claim_window_closed("sess-1"),
        lambda: trees.apply("sess-1", [(b"j" * 32, b"w", 5)]),
        lambda: trees.seal("sess-1"),
        lambda: trees.delete("sess-1"),
        lambda: rebroadcasts.put(CLAIM, 10, entry),
        lambda: rebroadcasts.delete(CLAIM, 10, "sess-1"),
    ]
    for i, write in enumerate(writes):
        with pytest.raises(LeaseLostError):
            await write()
        assert await dump(backend) == before, f"write {i} changed something"


async def test_unfenced_store_writes_as_before(backend: RedisBackend) -> None:
    r = backend.client
    await r.set(LEASE, "someone")
    store = RedisSessionStore(r, SessionStoreConfig(SUP))
    coord = SessionCoordinator(store, SUP)
    await store.save(snapshot())
    await coord.on_session_claimed("sess-1", b"r" * 48, "claim-tx")
    await coord.on_proof_submitted("sess-1", "proof-tx")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.CLAIMED
    assert (got.claimed_root_hash, got.claim_tx_hash, got.proof_tx_hash) == (
        b"r" * 48,
        "claim-tx",
        "proof-tx",
    )
    assert await r.smembers(store.state_index_key(SessionState.CLAIMED)) == {b"sess-1"}
    assert await r.smembers(store.state_index_key(SessionState.ACTIVE)) == set()
