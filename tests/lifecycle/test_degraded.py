"""The lifecycle when the chain misbehaves: unreachable reads fail open or are retried, a proof
the chain does not require is recognised, lost roots and missed windows end in the right state."""

from __future__ import annotations

import asyncio
from typing import Any

from relayminer.errors import StoreError
from relayminer.lifecycle.manager import LifecycleConfig, LifecycleManager, PassReport
from relayminer.sessions.model import SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.conftest import RedisBackend
from tests.lifecycle.support import NEVER, SUP1, FlakyChain, World, chain_config


async def session_one(world: World) -> str:
    sid = ""
    for _ in range(3):  # blocks 2..4: session 1
        sid = await world.relays(SUP1, 4)
        await world.step()
    return sid


async def flaky_world(backend: RedisBackend, **kw: object) -> tuple[World, FlakyChain]:
    world = await World.create(backend.client, **kw)  # type: ignore[arg-type]
    flaky = FlakyChain(world.chain)
    world.restart_lifecycle(SUP1, flaky)  # type: ignore[arg-type]
    return world, flaky


async def test_unreachable_reads_during_the_claim_fail_open(backend: RedisBackend) -> None:
    world, flaky = await flaky_world(backend)
    try:
        sid = await session_one(world)
        await world.run_to(5)
        # H=6: the service (CUPR, pricing) and session queries fail: the claim still goes out,
        # with the header taken from the snapshot.
        flaky.unavailable = {"service": 5, "get_session": 5}
        await world.step()
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
        await world.step()  # H=7: the claim landed
        assert await world.chain.get_claim(SUP1, sid) is not None
        # H=10: the claim check and the requirement's inputs fail: prove anyway.
        await world.run_to(9)
        flaky.unavailable = {"claims": 1, "proof_params": 1}
        await world.run_to(15)
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROVED and snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_unknown_requirement_then_proof_not_required(backend: RedisBackend) -> None:
    world, flaky = await flaky_world(backend, config=chain_config(NEVER))
    try:
        sid = await session_one(world)
        await world.run_to(9)
        flaky.unavailable = {"proof_params": 1}  # the miner cannot tell: it proves anyway
        await world.step()
        assert flaky.broadcasts[-1] == ["MsgSubmitProof"]  # rejected: proof not required
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROBABILISTIC_PROVED
        await world.run_to(15)
        assert (await world.session(SUP1, sid)).settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_params_unavailable_for_a_pass_is_retried_at_the_next(backend: RedisBackend) -> None:
    world, flaky = await flaky_world(backend)
    try:
        sid = await session_one(world)
        await world.run_to(5, passes=False)
        await world.chain.produce_block()  # H=6
        manager = world.managers[SUP1]
        flaky.unavailable = {"shared_params": 1}
        report = await manager.pass_at(6)
        assert report.errors and "params unavailable" in report.errors[0]
        assert (await world.session(SUP1, sid)).state is SessionState.ACTIVE
        assert not (await manager.pass_at(6)).errors
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
    finally:
        await world.close()


async def test_reconciler_survives_an_unreachable_claims_query(backend: RedisBackend) -> None:
    world, flaky = await flaky_world(backend)
    try:
        sid = await session_one(world)
        await world.run_to(5)
        await world.chain.drop_next_txs(1)
        await world.step()  # H=6: claim evicted
        flaky.unavailable = {"claims": 1}
        await world.step()  # H=7: inclusion unknown: nothing resent yet
        await world.run_to(15)  # H=8: found missing, resent once; proved after all
        snap = await world.session(SUP1, sid)
        assert snap.settlement_outcome == "settled_proven"
    finally:
        await world.close()


async def test_proof_window_missed(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(7)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
        await world.run_to(14, passes=False)  # down through the whole proof window
        await world.step()
        snap = await world.session(SUP1, sid)
        assert snap.state is SessionState.PROOF_WINDOW_CLOSED
        assert snap.settlement_outcome == "expired"  # the chain expired the unproven claim
    finally:
        await world.close()


async def test_lost_claimed_root_ends_proof_tx_error(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(7)
        r = backend.client
        await r.hdel(f"ha:miner:sessions:{SUP1}:{sid}", "claimed_root_hash")
        await r.delete(f"ha:smst:{SUP1}:{sid}:root")
        await world.run_to(10)
        assert (await world.session(SUP1, sid)).state is SessionState.PROOF_TX_ERROR
    finally:
        await world.close()


async def test_sealed_tree_not_matching_the_claim_ends_proof_tx_error(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(7)
        store = RedisSessionStore(backend.client, SessionStoreConfig(SUP1))
        snap = await store.get(sid)
        assert snap is not None and snap.claimed_root_hash is not None
        snap.claimed_root_hash = b"\x01" * 48  # the record no longer matches the sealed tree
        await store.save(snap)
        await world.run_to(10)
        assert (await world.session(SUP1, sid)).state is SessionState.PROOF_TX_ERROR
    finally:
        await world.close()


async def test_run_loop_waits_out_an_unreachable_chain(backend: RedisBackend) -> None:
    world, flaky = await flaky_world(
        backend, lifecycle_config=LifecycleConfig(block_wait_timeout_seconds=0.05)
    )
    try:
        passed = asyncio.Event()

        def on_pass(report: PassReport) -> None:
            passed.set()

        flaky.unavailable = {"wait_for_block": 2}
        manager = LifecycleManager(
            backend.client,
            SUP1,
            flaky,
            on_pass=on_pass,  # type: ignore[arg-type]
            config=LifecycleConfig(block_wait_timeout_seconds=0.05),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        await world.chain.produce_block()
        await asyncio.wait_for(passed.wait(), 30)  # it recovered and ran a pass
        stop.set()
        await asyncio.wait_for(task, 30)
        assert flaky.unavailable["wait_for_block"] == 0
    finally:
        await world.close()


async def test_settlement_outcomes_not_written_are_read_again_at_the_next_pass(
    backend: RedisBackend,
) -> None:
    """Redis failing the settlement write fails that pass's settlement only; the next pass
    reads the events again and records the outcome."""
    world = await World.create(backend.client)
    try:
        sid = await session_one(world)
        await world.run_to(13)
        store = world.managers[SUP1].store
        write = store.update_settlements
        failed: list[int] = []

        async def failing_once(outcomes: Any) -> Any:
            if not failed:
                failed.append(len(outcomes))
                raise StoreError("failed to update settlement metadata: connection reset")
            return await write(outcomes)

        store.update_settlements = failing_once  # type: ignore[method-assign]
        await world.chain.produce_block()  # H=14: the claim settles
        report = await world.managers[SUP1].pass_at(14)
        assert failed == [1] and any("connection reset" in e for e in report.errors)
        assert (await world.session(SUP1, sid)).settlement_outcome is None
        await world.step()  # H=15
        snap = await world.session(SUP1, sid)
        assert snap.settlement_outcome == "settled_proven" and snap.settlement_height == 14
    finally:
        await world.close()
