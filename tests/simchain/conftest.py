"""Fixtures of the simulated-chain tests (every chain runs on fakeredis and on a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import SimChainConfig
from tests.conftest import RedisBackend
from tests.simchain.support import make_config


class ChainFactory(Protocol):
    async def __call__(
        self,
        config: SimChainConfig | None = None,
        *,
        own_client: bool = False,
        init: bool = True,
        **kwargs: Any,
    ) -> SimulatedChain: ...


@pytest.fixture
async def make_chain(backend: RedisBackend) -> AsyncIterator[ChainFactory]:
    """Build SimulatedChain objects on the test's Redis; all are closed at the end."""
    chains: list[SimulatedChain] = []

    async def factory(
        config: SimChainConfig | None = None,
        *,
        own_client: bool = False,
        init: bool = True,
        **kwargs: Any,
    ) -> SimulatedChain:
        client = backend.new_client() if own_client else backend.client
        chain = SimulatedChain(client, config or make_config(), **kwargs)
        chains.append(chain)
        if init:
            await chain.init()
        return chain

    yield factory
    for chain in chains:
        await chain.close()


@pytest.fixture
async def chain(make_chain: ChainFactory) -> SimulatedChain:
    """A chain at genesis with the default test config (proofs always required)."""
    return await make_chain()
