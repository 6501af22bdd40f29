"""Operator-safety gauges and warnings of a Pocket chain, read from a LocalNode over the wire:
balances against the next window's fees, the age of the latest block, the last query."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from relayminer.chain.pocket import PocketChain, build_pocket_chain
from relayminer.chain.pocket.health import DEFAULT_TX_GAS, NodeHealth
from relayminer.chain.sim.node.node import LocalNode
from tests.localnet.support import SUPPLIER, SUPPLIER2
from tests.localnet.test_pocket_client import KEYS, settings_for


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def chain(node: LocalNode) -> AsyncIterator[PocketChain]:
    client = build_pocket_chain(settings_for(node), keys=lambda: KEYS)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_balances_and_ages_are_exported(node: LocalNode, chain: PocketChain) -> None:
    block = await node.produce_block()
    wall = Clock(block.time_unix + 2.0)
    health = NodeHealth(
        chain, [SUPPLIER.address], block_time_seconds=1.0, wall_clock=wall, monotonic=Clock(1e9)
    )
    report = await health.check()
    assert report.balances == {SUPPLIER.address: 1_000_000} and report.low_balances == []
    assert gauge("ha_miner_chain_balance_upokt", address=SUPPLIER.address) == 1_000_000
    assert report.block_age_seconds == pytest.approx(2.0, abs=0.01) and not report.stale
    assert gauge("ha_miner_chain_block_age_seconds") == pytest.approx(2.0, abs=0.01)
    assert report.last_query_age_seconds is not None and report.last_query_age_seconds > 0
    assert gauge("ha_miner_chain_last_query_age_seconds") == report.last_query_age_seconds


async def test_the_window_fee_estimate_follows_the_last_fee(
    node: LocalNode, chain: PocketChain
) -> None:
    health = NodeHealth(chain, [SUPPLIER.address], block_time_seconds=1.0)
    # before any tx: the default gas x adjustment x price (0.01), two txs, no proof fee
    expected = 2 * int(Decimal(int(DEFAULT_TX_GAS * Decimal("1.7"))) * Decimal("0.01"))
    assert await health.window_fee(SUPPLIER.address) == expected
    chain.broadcaster.last_fee_upokt[SUPPLIER.address] = 1234
    assert await health.window_fee(SUPPLIER.address) == 2 * 1234


async def test_low_balance_and_stale_node_warn_once_then_clear(
    node: LocalNode, chain: PocketChain, caplog: pytest.LogCaptureFixture
) -> None:
    block = await node.produce_block()
    wall, mono = Clock(block.time_unix + 10.0), Clock(0.0)
    health = NodeHealth(
        chain,
        [SUPPLIER.address, SUPPLIER2.address],  # SUPPLIER2 holds 5 upokt
        block_time_seconds=1.0,
        repeat_seconds=60.0,
        wall_clock=wall,
        monotonic=mono,
    )
    caplog.set_level(logging.INFO, logger="relayminer.chain.pocket.health")
    report = await health.check()
    assert report.stale and report.low_balances == [SUPPLIER2.address]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("balance below" in r.getMessage() for r in warnings)
    assert any("latest block is old" in r.getMessage() for r in warnings)
    caplog.clear()
    mono.now = 30.0
    await health.check()  # still bad, within repeat_seconds: quiet
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    mono.now = 61.0
    await health.check()  # still bad, repeated
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    caplog.clear()
    wall.now = block.time_unix + 0.5
    health.suppliers = [SUPPLIER.address]
    await health.check()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "the node produces blocks again"
    ]


async def test_an_unreachable_node_never_raises(node: LocalNode, chain: PocketChain) -> None:
    await node.produce_block()
    await chain.latest_block()
    health = NodeHealth(chain, [SUPPLIER.address], block_time_seconds=1.0)
    await node.stop()
    report = await health.check()
    assert report.balances == {} and report.block_age_seconds is not None
    await node.start()  # the fixture stops it again


async def test_run_checks_until_stopped(node: LocalNode, chain: PocketChain) -> None:
    health = NodeHealth(chain, [SUPPLIER.address], block_time_seconds=1.0)
    stop = asyncio.Event()
    rounds = 0
    check = health.check

    async def counting_check() -> object:
        nonlocal rounds
        rounds += 1
        stop.set()
        return await check()

    health.check = counting_check  # type: ignore[method-assign]
    await asyncio.wait_for(health.run(stop), 10)
    assert rounds == 1
