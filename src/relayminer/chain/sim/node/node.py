"""LocalNode: the simulated chain behind a real node's protocols, started and stopped as one.

It opens the application (:class:`~.app.LocalApp`, genesis on first start), the gRPC server and
the CometBFT RPC server on loopback, and produces a block every ``block_time_seconds`` (or only
when :meth:`LocalNode.produce_block` is called, with ``produce_blocks=False``: tests drive
blocks themselves). :meth:`LocalNode.ready_line` is the JSON line ``relayminer localnet``
prints once everything listens.

A demo or a test starts one in-process::

    node = LocalNode(redis, load_localnet_config("localnet.yaml"))
    info = await node.start()          # info.rpc, info.grpc, info.websocket, info.chain_id
    ...
    await node.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from relayminer.chain.base import Block, ChainUnavailableError
from relayminer.chain.sim.errors import SimChainError
from relayminer.chain.sim.node.app import LocalApp
from relayminer.chain.sim.node.genesis import LocalnetConfig
from relayminer.chain.sim.node.grpc_server import GrpcServer
from relayminer.chain.sim.node.rpc_server import RpcServer
from relayminer.keys import KeyBuilder

__all__ = ["LocalNode", "NodeEndpoints"]

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class NodeEndpoints:
    rpc: str  # http://127.0.0.1:PORT (CometBFT JSON-RPC)
    grpc: str  # 127.0.0.1:PORT (plaintext)
    websocket: str  # ws://127.0.0.1:PORT/websocket
    chain_id: str


class LocalNode:
    def __init__(
        self,
        redis: Redis,
        config: LocalnetConfig,
        *,
        keys: KeyBuilder | None = None,
        produce_blocks: bool = True,
    ) -> None:
        self.config = config
        self.app = LocalApp(redis, config, keys=keys)
        self.grpc = GrpcServer(self.app, LOOPBACK, config.grpc_port)
        self.rpc = RpcServer(self.app, LOOPBACK, config.rpc_port)
        self._produce_blocks = produce_blocks
        self._producer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.endpoints: NodeEndpoints | None = None

    async def start(self) -> NodeEndpoints:
        """Genesis (if new), then listen; returns the endpoints (ports resolved)."""
        await self.app.init()
        grpc_port = await self.grpc.start()
        rpc_port = await self.rpc.start()
        self.endpoints = NodeEndpoints(
            rpc=f"http://{LOOPBACK}:{rpc_port}",
            grpc=f"{LOOPBACK}:{grpc_port}",
            websocket=f"ws://{LOOPBACK}:{rpc_port}/websocket",
            chain_id=self.config.chain_id,
        )
        if self._produce_blocks:
            self._producer = asyncio.create_task(self._produce_loop(), name="localnet-blocks")
        log.info("localnet ready", extra=asdict(self.endpoints))
        return self.endpoints

    def ready_line(self) -> str:
        if self.endpoints is None:
            raise RuntimeError("the node is not started")
        return json.dumps(asdict(self.endpoints), separators=(",", ":"))

    async def produce_block(self) -> Block:
        """Produce one block now and publish its events to websocket subscribers."""
        block = await self.app.produce_block()
        await self.rpc.publish_block(block.height)
        return block

    async def _produce_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.block_time_seconds
        next_tick = loop.time() + interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, next_tick - loop.time()))
            if self._stopping.is_set():
                break
            next_tick = max(next_tick + interval, loop.time())
            try:
                await self.produce_block()
            except (SimChainError, ChainUnavailableError) as err:
                log.warning("localnet: block production failed", extra={"error": str(err)})

    async def stop(self) -> None:
        self._stopping.set()
        if self._producer is not None:
            await self._producer
            self._producer = None
        await self.rpc.stop()
        await self.grpc.stop()
        await self.app.close()

    async def __aenter__(self) -> LocalNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
