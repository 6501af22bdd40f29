"""Fixtures: a LocalNode on loopback over the test's Redis (fakeredis and a real server), blocks
produced only when a test asks, and raw gRPC / HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from relayminer.chain.sim.node.node import LocalNode
from tests.conftest import RedisBackend
from tests.localnet.support import make_config


@pytest.fixture
async def node(backend: RedisBackend) -> AsyncIterator[LocalNode]:
    n = LocalNode(backend.client, make_config(), produce_blocks=False)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


@pytest.fixture
async def channel(node: LocalNode) -> AsyncIterator[grpc.aio.Channel]:
    assert node.endpoints is not None
    async with grpc.aio.insecure_channel(node.endpoints.grpc) as ch:
        yield ch


@pytest.fixture
async def http(node: LocalNode) -> AsyncIterator[aiohttp.ClientSession]:
    assert node.endpoints is not None
    async with aiohttp.ClientSession(base_url=node.endpoints.rpc) as session:
        yield session
