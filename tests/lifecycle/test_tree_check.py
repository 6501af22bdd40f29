"""A wrong or unprovable root is never claimed (keys lost the way eviction loses them), and a
chain's refusal is decided on its classified reason alone.

Timeline (support.py): session 1 = blocks 1..4; claim window 6..10 (submissions at H=6..8).
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import REGISTRY

from relayminer.chain.base import Msg, TxResult
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.config import LifecycleConfig
from relayminer.sessions.model import SessionState
from relayminer.smst.layout import SMSTLayout
from tests.conftest import RedisBackend
from tests.lifecycle.support import SUP1, FlakyChain, World

KEYS = KeyBuilder()


def mismatches(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "ha_miner_tree_mismatch_total", {"supplier": SUP1, "reason": reason}
    )
    return value or 0.0


async def relays_in_session_one(world: World, per_block: int = 4) -> str:
    sid = ""
    for _ in range(2):  # blocks 2..3
        sid = await world.relays(SUP1, per_block)
        await world.step()
    return sid


async def test_lost_live_root_is_not_claimed(backend: RedisBackend) -> None:
    world = await World.create(backend.client, layout=SMSTLayout.GO)
    try:
        sid = await relays_in_session_one(world)
        # live_root evicted; a fresh worker (nothing cached) starts an empty tree
        await backend.client.delete(KEYS.smst_live_root_key(SUP1, sid))
        world.workers[SUP1] = world.new_worker(SUP1)
        assert await world.relays(SUP1, 3) == sid
        before = mismatches("tree_short")
        await world.run_to(6)
        snap = await world.session(SUP1, sid)
        assert snap.relay_count == 11
        assert snap.state is SessionState.CLAIM_TX_ERROR
        assert snap.claimed_root_hash is None and snap.claim_tx_hash == ""
        assert mismatches("tree_short") == before + 1
        await world.run_to(8)
        assert await world.chain.get_claim(SUP1, sid) is None
    finally:
        await world.close()


async def test_lost_nodes_under_a_cached_tree_are_not_claimed(backend: RedisBackend) -> None:
    world = await World.create(backend.client, layout=SMSTLayout.GO)
    try:
        sid = await relays_in_session_one(world, per_block=8)
        # :nodes evicted while the worker keeps the tree in memory: its next commits write
        # only the nodes they change, so the stored tree is incomplete under a right root
        await backend.client.delete(KEYS.smst_nodes_key(SUP1, sid))
        await world.relays(SUP1, 2)
        before = mismatches("incomplete")
        await world.run_to(6)
        snap = await world.session(SUP1, sid)
        assert snap.relay_count == 18
        assert snap.state is SessionState.CLAIM_TX_ERROR
        assert mismatches("incomplete") == before + 1
        await world.run_to(8)
        assert await world.chain.get_claim(SUP1, sid) is None
    finally:
        await world.close()


async def test_a_sound_tree_is_claimed(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(7)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
        assert await world.chain.get_claim(SUP1, sid) is not None
    finally:
        await world.close()


async def test_a_tree_ahead_of_its_counters_waits_then_claims_at_the_last_chance(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client, layout=SMSTLayout.GO)
    try:
        sid = await relays_in_session_one(world)
        # the accounting of one committed relay has not run (yet)
        key = KEYS.miner_session_key(SUP1, sid)
        await backend.client.hincrby(key, "relay_count", -1)
        await backend.client.hincrby(key, "total_compute_units", -10)
        await world.run_to(6)  # H=6: two later passes (7, 8) can still submit: wait
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMING
        assert world.reports[-1].claimed == []
        before = mismatches("counters_behind")
        await world.step()  # H=7: no more waiting: the tree (every relay) is claimed
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.CLAIMED
        assert snap.claimed_root_hash is not None
        assert mismatches("counters_behind") == before + 1
    finally:
        await world.close()


# --- the leaf journal (default layout) -----------------------------------------------------


async def test_journal_lost_leaves_are_not_claimed(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await relays_in_session_one(world)
        await backend.client.delete(KEYS.smst_leaves_key(SUP1, sid))  # evicted
        await world.relays(SUP1, 3)
        before = mismatches("counters_differ")
        await world.run_to(6)
        snap = await world.session(SUP1, sid)
        assert snap.relay_count == 11
        assert snap.state is SessionState.CLAIM_TX_ERROR
        assert snap.claimed_root_hash is None
        assert mismatches("counters_differ") == before + 1
        await world.run_to(8)
        assert await world.chain.get_claim(SUP1, sid) is None
    finally:
        await world.close()


async def test_journal_tree_ahead_of_its_counters_is_damage(backend: RedisBackend) -> None:
    """Journal and counters are written by one script: a tree ahead of the counters cannot be
    accounting in flight, so it is refused at once (no waiting for the last chance)."""
    world = await World.create(backend.client)
    try:
        sid = await relays_in_session_one(world)
        key = KEYS.miner_session_key(SUP1, sid)
        await backend.client.hincrby(key, "relay_count", -1)
        await backend.client.hincrby(key, "total_compute_units", -10)
        await world.run_to(6)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_TX_ERROR
        assert await world.chain.get_claim(SUP1, sid) is None
    finally:
        await world.close()


async def test_journal_proof_after_a_restart_rebuilds_and_checks_the_sealed_root(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client)
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(7)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.CLAIMED and snap.claimed_root_hash is not None
        world.restart_lifecycle(SUP1)  # nothing cached: the proof rebuilds from the journal
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROVED
        assert snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_journal_changed_after_the_seal_is_never_proved(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(7)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
        leaves = KEYS.smst_leaves_key(SUP1, sid)
        field = (await backend.client.hkeys(leaves))[0]
        await backend.client.hdel(leaves, field)  # a leaf lost after the claim
        world.restart_lifecycle(SUP1)
        await world.run_to(15)
        assert (await world.session(SUP1, sid)).state is SessionState.PROOF_TX_ERROR
    finally:
        await world.close()


class RefusingChain(FlakyChain):
    """Answers every claim broadcast with ``answer`` (a node's codespace/code/log)."""

    answer: TxResult

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        self.broadcasts.append([type(m).__name__ for m in msgs])
        return self.answer


async def refusing_world(backend: RedisBackend, answer: TxResult) -> tuple[World, RefusingChain]:
    world = await World.create(backend.client, lifecycle_config=LifecycleConfig())
    chain = RefusingChain(world.chain)
    chain.answer = answer
    world.restart_lifecycle(SUP1, chain)  # type: ignore[arg-type]
    return world, chain


async def test_invalid_content_ends_the_claim_at_once(backend: RedisBackend) -> None:
    answer = TxResult("", 1104, "invalid root hash: bad", "proof")
    world, chain = await refusing_world(backend, answer)
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(6)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_TX_ERROR
        assert len(chain.broadcasts) == 1  # not retried: the same content cannot succeed
    finally:
        await world.close()


async def test_retryable_rejections_count_up_to_the_limit(backend: RedisBackend) -> None:
    world, chain = await refusing_world(backend, TxResult("", 20, "mempool is full", "sdk"))
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(7)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMING
        await world.step()  # third attempt (max_submit_attempts = 3)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_TX_ERROR
        assert len(chain.broadcasts) == 3
    finally:
        await world.close()


async def test_window_closed_text_from_a_handler_ends_claim_window_closed(
    backend: RedisBackend,
) -> None:
    log = (
        "failed to execute message; message index: 0: rpc error: code = FailedPrecondition "
        "desc = claim attempted outside of the session's claim window: current block height "
        "(7) is greater than session claim window close height (6)"
    )
    world, _chain = await refusing_world(backend, TxResult("", 1, log, "undefined"))
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(6)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_WINDOW_CLOSED
    finally:
        await world.close()


async def test_already_in_mempool_counts_as_accepted(backend: RedisBackend) -> None:
    world, _chain = await refusing_world(
        backend, TxResult("ABC", 19, "tx already exists in cache", "sdk")
    )
    try:
        sid = await relays_in_session_one(world)
        await world.run_to(6)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.CLAIMED and snap.claim_tx_hash == "ABC"
    finally:
        await world.close()
