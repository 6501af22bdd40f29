"""Fault cases of the lifecycle, each asserting the final state (issue 'Session lifecycle' 4).

Timeline (see support.py): session 1 = blocks 1..4; claim window 6..10 (claim at H=6, lands at
7); proof window 10..14 (seed block 9); settlement in block 14.
"""

from __future__ import annotations

from relayminer.lifecycle.manager import LifecycleConfig
from relayminer.sessions.model import SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.conftest import RedisBackend
from tests.lifecycle.support import (
    APP,
    NEVER,
    SUP1,
    SVC,
    SVC2,
    FlakyChain,
    World,
    chain_config,
)


async def session_one(world: World, n: int = 4, **kw: object) -> str:
    sid = ""
    for _ in range(3):  # blocks 2..4
        sid = await world.relays(SUP1, n, **kw)  # type: ignore[arg-type]
        await world.step()
    return sid


async def state(world: World, sid: str) -> SessionState:
    return (await world.session(SUP1, sid)).state


async def test_dropped_claim_is_resent_once_and_lands(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(5)
        await world.chain.drop_next_txs(1)
        await world.step()  # H=6: the claim is accepted by CheckTx, then evicted
        assert await state(world, sid) is SessionState.CLAIMED
        assert await world.chain.get_claim(SUP1, sid) is None
        await world.run_to(9)
        resent = [r for r in world.reports if sid in r.resent]
        assert [r.height for r in resent] == [8]  # midpoint of 6..10, once
        assert await world.chain.get_claim(SUP1, sid) is not None
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROVED and snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_dropped_proof_is_resent_and_validated(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(9)
        await world.chain.drop_next_txs(1)
        await world.step()  # H=10: the proof is evicted
        assert await state(world, sid) is SessionState.PROVED
        await world.run_to(15)
        assert any(sid in r.resent for r in world.reports)
        snap = await world.session(SUP1, sid)
        assert snap.settlement_outcome == "settled_proven"  # the resent proof validated
    finally:
        await world.close()


async def test_claim_window_missed(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(11, passes=False)  # the miner is down through the whole window
        await world.step()
        assert await state(world, sid) is SessionState.CLAIM_WINDOW_CLOSED
        assert await world.chain.get_claim(SUP1, sid) is None
        assert await backend.client.keys(f"ha:smst:{SUP1}:{sid}:*") == []
    finally:
        await world.close()


async def test_proof_not_required_ends_probabilistic_proved(backend: RedisBackend) -> None:
    world = await World.create(backend.client, chain_config(NEVER))
    try:
        sid = await session_one(world)
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROBABILISTIC_PROVED
        assert snap.proof_tx_hash == ""  # no proof was built or sent
        assert snap.settlement_outcome == "settled_proven"
        assert (await world.chain.summary()).as_dict()["claims_settled"] == 1
    finally:
        await world.close()


async def test_claim_missing_on_chain(backend: RedisBackend) -> None:
    world = await World.create(backend.client, lifecycle_config=LifecycleConfig(max_rebroadcasts=0))
    try:
        sid = await session_one(world)
        await world.run_to(5)
        await world.chain.drop_next_txs(1)
        await world.run_to(11)
        assert await state(world, sid) is SessionState.CLAIM_MISSING
    finally:
        await world.close()


async def test_restart_between_claim_and_proof_still_proves(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(7)
        assert await state(world, sid) is SessionState.CLAIMED
        world.restart_lifecycle(SUP1)
        await world.run_to(15)
        assert await state(world, sid) is SessionState.PROVED
        assert (await world.session(SUP1, sid)).settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_restart_between_claiming_and_broadcast_still_proves(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(6, passes=False)
        # The crashed owner had written `claiming` and sealed the tree, then died before the
        # broadcast (Go never re-drives such a session, Q3).
        store = RedisSessionStore(backend.client, SessionStoreConfig(SUP1))
        await store.update_state(sid, SessionState.CLAIMING)
        root = await world.managers[SUP1].trees.seal(sid)
        world.restart_lifecycle(SUP1)
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROVED and snap.claimed_root_hash == root
        assert snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_restart_between_proving_and_broadcast_still_proves(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(9)
        store = RedisSessionStore(backend.client, SessionStoreConfig(SUP1))
        await store.update_state(sid, SessionState.PROVING)
        world.restart_lifecycle(SUP1)
        await world.run_to(15)
        assert (await world.session(SUP1, sid)).settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_one_unprofitable_session_in_a_batch_is_skipped_alone(backend: RedisBackend) -> None:
    world = await World.create(
        backend.client, lifecycle_config=LifecycleConfig(min_claim_reward_upokt=15)
    )
    try:
        await world.step()
        small = await world.relays(SUP1, 1, service=SVC)  # 1 x 10 CU = 10 uPOKT <= 15
        big = await world.relays(SUP1, 5, service=SVC2)  # 5 x 7 CU = 35 uPOKT
        await world.run_to(15)
        assert await state(world, small) is SessionState.CLAIM_SKIPPED
        assert await state(world, big) is SessionState.PROVED
        assert await world.chain.get_claim(SUP1, small) is None
        claims = [r.claimed for r in world.reports if r.claimed]
        assert claims == [[big]]
        assert await backend.client.keys(f"ha:smst:{SUP1}:{small}:*") == []
    finally:
        await world.close()


async def test_cupr_mismatch_is_skipped(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world, cu=3)  # the service's CUPR is 10
        await world.run_to(15)
        assert await state(world, sid) is SessionState.CLAIM_SKIPPED
        assert await world.chain.get_claim(SUP1, sid) is None
    finally:
        await world.close()


async def test_session_without_relays_in_its_tree_is_skipped(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        header = await world.header(APP, SVC, 2)
        await world.managers[SUP1].coordinator.on_session_created(
            header.session_id,
            SUP1,
            SVC,
            APP,
            header.session_start_block_height,
            header.session_end_block_height,
        )
        await world.run_to(7)
        assert await state(world, header.session_id) is SessionState.CLAIM_SKIPPED
    finally:
        await world.close()


async def test_rejected_member_does_not_fail_the_batch(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        await world.step()
        good = await world.relays(SUP1, 3)
        # Relays for a session the chain does not know (same end height): its claim is rejected.
        bogus = await world.relays(SUP1, 3, service=SVC2)
        await world.step()
        await backend.client.hset(
            f"ha:miner:sessions:{SUP1}:{bogus}", "application_address", "pokt1nobody"
        )
        await world.run_to(15)
        assert await state(world, good) is SessionState.PROVED
        assert await state(world, bogus) is SessionState.CLAIM_TX_ERROR
    finally:
        await world.close()


async def test_chain_outage_during_the_claim_window_is_re_driven(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    flaky = FlakyChain(world.chain)
    try:
        world.restart_lifecycle(SUP1, flaky)
        sid = await session_one(world)
        flaky.unavailable_next = 2  # H=6 and H=7: the node cannot be reached
        await world.run_to(7)
        assert await state(world, sid) is SessionState.CLAIMING
        await world.run_to(15)
        assert await state(world, sid) is SessionState.PROVED
        assert (await world.session(SUP1, sid)).settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_claim_tx_error_healed_by_the_reconciler_is_proved(backend: RedisBackend) -> None:
    world = await World.create(
        backend.client, lifecycle_config=LifecycleConfig(max_submit_attempts=2)
    )
    flaky = FlakyChain(world.chain)
    try:
        world.restart_lifecycle(SUP1, flaky)
        sid = await session_one(world)
        flaky.reject_next = 2  # H=6 and H=7 rejected: claim_tx_error
        await world.run_to(7)
        assert await state(world, sid) is SessionState.CLAIM_TX_ERROR
        # The reconciler resent it once (never broadcast: at once); it landed; the session
        # re-enters the proof flow (Go leaves it terminal, Q4).
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROVED
        assert snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_proof_dropped_twice_is_corrected_when_the_chain_expires_it(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(9)
        await world.chain.drop_next_txs(2)  # the proof and its one resend are both evicted
        await world.step()  # H=10
        assert await state(world, sid) is SessionState.PROVED  # accepted by the mempool
        await world.run_to(15)
        assert any(sid in r.resent for r in world.reports)
        snap = await world.session(SUP1, sid)
        assert snap.settlement_outcome == "expired"
        assert snap.state is SessionState.PROOF_WINDOW_CLOSED  # corrected from the chain
    finally:
        await world.close()
