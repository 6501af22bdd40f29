"""The inclusion reconciler decides on evidence: a claim or proof that failed at execution is
resent at the next block; one that is merely not included yet waits for its inclusion deadline;
one that executed is never sent twice (``docs/lifecycle.md``, "Inclusion").

Timeline (``support.PARAMS``): session 1 = blocks 1..4, claim window 6..10, proof window
10..14, settlement 14.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from relayminer.chain.base import Block, Msg, TxResult
from relayminer.chain.rejections import Rejection
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.lifecycle.config import LifecycleConfig
from relayminer.sessions.model import SessionState
from tests.conftest import RedisBackend
from tests.lifecycle.support import SUP1, FlakyChain, World

WINDOW_CLOSED_LOG = (
    "failed to execute message; message index: 0: rpc error: code = FailedPrecondition desc = "
    "claim attempted outside of the session's claim window"
)


class FailingAtExecution(FlakyChain):
    """The next ``fail_next`` broadcasts pass CheckTx but never execute: the simulated chain
    drops them, and ``tx_status`` reports them in a block with ``failure``."""

    def __init__(self, inner: object, failure: TxResult) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.fail_next = 0
        self.failure = failure
        self.failed: dict[str, int] = {}  # tx hash -> the height it was broadcast at

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        if self.fail_next:
            self.fail_next -= 1
            await self.inner.drop_next_txs(1)
            result = await super().broadcast(msgs)
            self.failed[result.tx_hash] = (await self.inner.latest_block()).height
            return result
        return await super().broadcast(msgs)

    async def tx_status(self, tx_hash: str) -> TxResult | None:
        sent_at = self.failed.get(tx_hash)
        if sent_at is not None:
            if (await self.inner.latest_block()).height <= sent_at:
                return None  # not in a block yet
            f = self.failure
            return TxResult(tx_hash, f.code, f.log, f.codespace)
        return await self.inner.tx_status(tx_hash)


C = TypeVar("C", bound=FlakyChain)


@contextlib.asynccontextmanager
async def one_session(
    backend: RedisBackend,
    make_chain: Callable[[SimulatedChain], C],
    config: LifecycleConfig | None = None,
) -> AsyncIterator[tuple[World, C, str]]:
    """A world whose supplier 1 lifecycle talks to ``make_chain(the simulated chain)``, with 5
    relays in session 1, run to block 5 (the claim window opens at 6); the session id."""
    world = await World.create(backend.client, lifecycle_config=config)
    chain = make_chain(world.chain)
    world.restart_lifecycle(SUP1, chain)  # type: ignore[arg-type]
    try:
        sid = await world.relays(SUP1, 5, height=2)
        await world.run_to(5)
        yield world, chain, sid
    finally:
        await world.close()


def out_of_gas(inner: SimulatedChain) -> FailingAtExecution:
    """Its failing txs fail with sdk 11 (retryable)."""
    return FailingAtExecution(inner, TxResult("", 11, "out of gas", "sdk"))


def claims_sent(chain: FlakyChain) -> int:
    return sum(1 for b in chain.broadcasts if b == ["MsgCreateClaim"])


async def test_a_claim_that_failed_at_execution_is_resent_at_the_next_block(
    backend: RedisBackend,
) -> None:
    async with one_session(backend, out_of_gas) as (world, chain, sid):
        chain.fail_next = 1
        await world.run_to(6)  # the claim goes out and is "included" with code 11
        assert claims_sent(chain) == 1
        await world.step()  # 7: noticed, resent at once
        report = next(r for r in world.reports if r.height == 7)
        assert sid in report.failed_at_execution and sid in report.resent
        assert claims_sent(chain) == 2
        await world.run_to(16)
        s = await world.session(SUP1, sid)
        assert s.state is SessionState.PROVED and s.settlement_outcome == "settled_proven"
        assert claims_sent(chain) == 2  # nothing more


async def test_a_claim_not_in_a_block_waits_for_its_inclusion_deadline(
    backend: RedisBackend,
) -> None:
    async with one_session(backend, FlakyChain) as (world, chain, sid):
        await world.chain.drop_next_txs(1)  # accepted by CheckTx, evicted silently
        await world.run_to(7)
        assert claims_sent(chain) == 1  # block 7: it may still be on its way
        await world.step()  # 8 = broadcast at 6 + inclusion_deadline_blocks (2): resent
        assert claims_sent(chain) == 2
        await world.run_to(16)
        assert (await world.session(SUP1, sid)).state is SessionState.PROVED
        assert (await world.chain.summary()).claims_updated == 0


async def test_an_executed_claim_and_proof_are_each_sent_once(backend: RedisBackend) -> None:
    async with one_session(backend, FlakyChain) as (world, chain, sid):
        await world.run_to(16)
        assert chain.broadcasts == [["MsgCreateClaim"], ["MsgSubmitProof"]]
        summary = await world.chain.summary()
        assert summary.claims_updated == 0 and summary.txs_failed == 0
        delays = [d for r in world.reports for d in r.delays]
        assert delays == [("claim", 0), ("proof", 0)]  # each at the first block of its window
        assert (await world.session(SUP1, sid)).settlement_outcome == "settled_proven"


async def test_a_failure_no_resend_can_fix_ends_the_record(backend: RedisBackend) -> None:
    failure = TxResult("", 1, WINDOW_CLOSED_LOG, "undefined")
    assert failure.reason is Rejection.WINDOW_CLOSED

    def refused(inner: SimulatedChain) -> FailingAtExecution:
        return FailingAtExecution(inner, failure)

    async with one_session(backend, refused) as (world, chain, _sid):
        chain.fail_next = 1
        await world.run_to(8)
        assert claims_sent(chain) == 1  # never resent
        assert await world.managers[SUP1].rebroadcasts.groups("claim") == []


async def test_resends_stop_at_max_rebroadcasts(backend: RedisBackend) -> None:
    once = LifecycleConfig(max_rebroadcasts=1)
    async with one_session(backend, out_of_gas, once) as (world, chain, sid):
        chain.fail_next = 2  # the claim and its one resend both fail
        await world.run_to(9)
        assert claims_sent(chain) == 2
        assert await world.managers[SUP1].rebroadcasts.groups("claim") == []
        await world.run_to(12)
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_MISSING


class LaggingChain(FlakyChain):
    """The chain seen ``lag`` blocks ahead of the pass (a pass that took that long)."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.lag = 0

    async def latest_block(self) -> Block:
        block = await self.inner.latest_block()
        return Block(block.height + self.lag, block.hash, block.time_unix)


async def test_delays_and_deadlines_count_from_the_height_at_broadcast(
    backend: RedisBackend,
) -> None:
    async with one_session(backend, LaggingChain) as (world, chain, sid):
        chain.lag = 1  # the claim pass of block 6 ends when block 7 is out
        await world.run_to(6)
        assert [d for r in world.reports for d in r.delays] == [("claim", 1)]
        entry = (await world.managers[SUP1].rebroadcasts.entries("claim", 4))[sid]
        assert entry.submit_height == 7  # its inclusion deadline counts from there
        chain.lag = 0
        await world.run_to(16)
        assert (await world.session(SUP1, sid)).state is SessionState.PROVED
        assert claims_sent(chain) == 1


async def test_a_claim_whose_window_passed_during_the_pass_is_not_sent(
    backend: RedisBackend,
) -> None:
    async with one_session(backend, LaggingChain) as (world, chain, sid):
        chain.lag = 4  # every pass ends 4 blocks on: from block 6, the window [6, 10] is over
        await world.run_to(10)
        assert claims_sent(chain) == 0  # no tx that could only fail at execution
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIM_WINDOW_CLOSED


class WithoutTxStatus(FlakyChain):
    """A chain written before ``tx_status`` joined the protocol."""

    def __getattr__(self, name: str) -> object:
        if name == "tx_status":
            raise AttributeError(name)
        return super().__getattr__(name)


async def test_a_chain_without_tx_status_falls_back_on_state_and_deadline(
    backend: RedisBackend,
) -> None:
    async with one_session(backend, WithoutTxStatus) as (world, chain, sid):
        assert not hasattr(chain, "tx_status")
        await world.chain.drop_next_txs(1)
        await world.run_to(7)
        assert claims_sent(chain) == 1
        await world.step()  # 8: missing after its deadline, resent
        assert claims_sent(chain) == 2
        await world.run_to(16)
        assert (await world.session(SUP1, sid)).state is SessionState.PROVED
