"""Several SimulatedChain objects on one Redis: genesis, shared state, block waiting, the
producer lease and the run loop."""

from __future__ import annotations

import asyncio
import json

import pytest

from relayminer.chain.base import ChainUnavailableError
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.errors import (
    BlockProducerBusyError,
    SimChainConfigMismatchError,
    SimChainNotInitialisedError,
    UnknownBlockError,
)
from relayminer.chain.sim.state import as_bytes
from relayminer.keys import KeyBuilder, Namespace
from tests.conftest import RedisBackend
from tests.simchain.conftest import ChainFactory
from tests.simchain.support import (
    APP,
    CLAIM_OPEN,
    CUPR,
    SUP1,
    SVC,
    advance_to,
    claim,
    fake_root,
    make_config,
)


async def test_init_is_idempotent_and_concurrent(make_chain: ChainFactory) -> None:
    a = await make_chain(init=False, own_client=True)
    b = await make_chain(init=False, own_client=True)
    ga, gb = await asyncio.gather(a.init(), b.init())
    assert ga == gb
    assert ga.height == 1
    assert await a.init() == ga  # again: nothing changes
    assert await a.supplier_stake(SUP1) == a.config.supplier_stake_upokt


async def test_reads_before_genesis_fail_clearly(make_chain: ChainFactory) -> None:
    chain = await make_chain(init=False)
    with pytest.raises(SimChainNotInitialisedError, match="init"):
        await chain.latest_block()
    with pytest.raises(SimChainNotInitialisedError):
        await chain.produce_block()


async def test_another_config_on_the_same_chain_is_refused(make_chain: ChainFactory) -> None:
    await make_chain(make_config(seed=1))
    other = await make_chain(make_config(seed=2), init=False)
    with pytest.raises(SimChainConfigMismatchError):
        await other.init()


async def test_key_namespace_follows_the_key_builder(
    make_chain: ChainFactory, backend: RedisBackend
) -> None:
    chain = await make_chain(keys=KeyBuilder(Namespace(base_prefix="prod")))
    assert chain.keys.height == "prod:sim:chain:height"
    keys = sorted(as_bytes(k).decode() for k in await backend.client.keys("*"))
    assert keys and all(k.startswith("prod:sim:chain:") for k in keys)


async def test_a_second_object_sees_the_same_chain(
    make_chain: ChainFactory, backend: RedisBackend
) -> None:
    producer = await make_chain()
    reader = await SimulatedChain.attach(backend.new_client())
    try:
        assert reader.config == producer.config
        header = (await reader.get_session(APP, SVC, 1)).header
        await advance_to(producer, CLAIM_OPEN - 1)
        assert (await reader.latest_block()) == (await producer.latest_block())
        result = await reader.broadcast([claim(SUP1, header, fake_root(2, 2 * CUPR))])
        assert result.ok, result.log
        assert await producer.mempool_size() == 1
        await producer.produce_block()
        stored = await reader.get_claim(SUP1, header.session_id)
        assert stored is not None
        assert await reader.claims(SUP1) == await producer.claims(SUP1)
        assert await reader.events(1, CLAIM_OPEN) == await producer.events(1, CLAIM_OPEN)
        for h in range(1, CLAIM_OPEN + 1):
            assert await reader.block_hash(h) == await producer.block_hash(h)
        with pytest.raises(UnknownBlockError):
            await reader.block_hash(CLAIM_OPEN + 1)
    finally:
        await reader.close()


async def test_attach_needs_a_genesis(backend: RedisBackend) -> None:
    with pytest.raises(SimChainNotInitialisedError):
        await SimulatedChain.attach(backend.client)


async def test_block_hashes_are_reproducible(
    make_chain: ChainFactory, backend: RedisBackend
) -> None:
    chain = await make_chain()
    await advance_to(chain, 4)
    hashes = [await chain.block_hash(h) for h in range(1, 5)]
    await backend.client.flushall()
    again = await make_chain()
    await advance_to(again, 4)
    assert [await again.block_hash(h) for h in range(1, 5)] == hashes
    assert len(set(hashes)) == 4


async def test_wait_for_block_wakes_when_another_object_produces(
    make_chain: ChainFactory,
) -> None:
    producer = await make_chain(own_client=True)
    # Polling every 60 s: only the pub/sub notice can wake the waiter in time.
    waiter = await make_chain(own_client=True, poll_interval_seconds=60.0)
    task = asyncio.create_task(waiter.wait_for_block(3, timeout=20.0))
    await producer.produce_block()
    await producer.produce_block()
    block = await task
    assert block.height == 3
    assert block == await producer.latest_block()


async def test_wait_for_block_wakes_in_process(make_chain: ChainFactory) -> None:
    chain = await make_chain(poll_interval_seconds=60.0)
    task = asyncio.create_task(chain.wait_for_block(2, timeout=20.0))
    await chain.produce_block()
    assert (await task).height == 2


async def test_wait_for_block_returns_at_once_when_reached(make_chain: ChainFactory) -> None:
    chain = await make_chain(poll_interval_seconds=60.0)
    await chain.produce_block()
    assert (await chain.wait_for_block(1, timeout=20.0)).height == 2


async def test_wait_for_block_times_out(chain: SimulatedChain) -> None:
    with pytest.raises(TimeoutError):
        await chain.wait_for_block(5, timeout=0.05)


async def test_blocks_are_published_on_the_block_channel(
    chain: SimulatedChain, backend: RedisBackend
) -> None:
    pubsub = backend.new_client().pubsub()
    await pubsub.subscribe(KeyBuilder().block_event_channel())
    await pubsub.get_message(timeout=5.0)  # the subscribe confirmation
    block = await chain.produce_block()
    message = None
    while message is None:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
    assert json.loads(message["data"]) == {"height": block.height, "hash": block.hash.hex()}
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_only_one_producer_at_a_time(make_chain: ChainFactory) -> None:
    a = await make_chain(own_client=True)
    b = await make_chain(own_client=True)
    assert await a.acquire_producer()
    with pytest.raises(BlockProducerBusyError):
        await b.produce_block()
    assert (await a.produce_block()).height == 2
    with pytest.raises(BlockProducerBusyError):  # a kept the lease it had acquired itself
        await b.produce_block()
    await a.release_producer()
    assert (await b.produce_block()).height == 3
    assert (await a.produce_block()).height == 4  # b released its per-call lease


async def test_concurrent_producers_never_fork(make_chain: ChainFactory) -> None:
    chains = [await make_chain(own_client=True) for _ in range(4)]
    results = await asyncio.gather(*(c.produce_block() for c in chains), return_exceptions=True)
    produced = [r for r in results if not isinstance(r, BaseException)]
    assert produced, results
    assert all(
        isinstance(r, BlockProducerBusyError) for r in results if isinstance(r, BaseException)
    )
    latest = await chains[0].latest_block()
    assert latest.height == 1 + len(produced)
    assert sorted(b.height for b in produced) == list(range(2, latest.height + 1))


async def test_run_produces_blocks_until_stopped(make_chain: ChainFactory) -> None:
    runner = await make_chain(own_client=True)
    watcher = await make_chain(own_client=True)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    assert (await watcher.wait_for_block(4, timeout=20.0)).height >= 4
    with pytest.raises(BlockProducerBusyError):  # the running loop holds the lease
        await watcher.produce_block()
    stop.set()
    await task
    height = (await watcher.latest_block()).height
    assert (await watcher.produce_block()).height == height + 1  # lease released


async def test_redis_failures_become_chain_unavailable(backend: RedisBackend) -> None:
    chain = SimulatedChain(backend.broken_client(), make_config())
    with pytest.raises(ChainUnavailableError):
        await chain.latest_block()
    with pytest.raises(ChainUnavailableError):
        await chain.get_claim(SUP1, "s")


async def test_wait_for_block_waits_for_genesis(make_chain: ChainFactory) -> None:
    waiter = await make_chain(init=False, own_client=True, poll_interval_seconds=60.0)
    producer = await make_chain(init=False, own_client=True)
    task = asyncio.create_task(waiter.wait_for_block(2, timeout=20.0))
    await producer.init()
    await producer.produce_block()
    assert (await task).height == 2


async def test_blocks_iterates_in_order(chain: SimulatedChain) -> None:
    await advance_to(chain, 3)
    seen = []
    async for block in chain.blocks(0):
        seen.append(block)
        if block.height == 3:
            break
    assert [b.height for b in seen] == [1, 2, 3]
    assert seen[2] == await chain.block(3) == await chain.latest_block()
