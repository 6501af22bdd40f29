from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .fakes import CometState, GrpcServer, NodeState, start_comet, start_grpc


@pytest.fixture
def node_state() -> NodeState:
    return NodeState()


@pytest.fixture
async def grpc_node(node_state: NodeState) -> AsyncIterator[GrpcServer]:
    server = await start_grpc(node_state)
    try:
        yield server
    finally:
        if node_state.stall is not None:
            node_state.stall.set()
        await server.server.stop(None)


@pytest.fixture
def comet_state() -> CometState:
    return CometState()


@pytest.fixture
async def comet_url(comet_state: CometState) -> AsyncIterator[str]:
    async for url in start_comet(comet_state):
        yield url
