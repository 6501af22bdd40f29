"""The demo's world on a localnet: the miner talks to the chain only over the wire.

``relayminer demo --chain localnet`` runs the demo of :mod:`relayminer.demo.runner` with one
difference: the simulated chain is wrapped in an in-process
:class:`~relayminer.chain.sim.node.node.LocalNode` (CometBFT RPC, websocket and gRPC on
loopback, producing its own blocks), and the miner's chain is the real Pocket client
(``chain.type: pocket``, built by :func:`relayminer.chain.factory.build_chain`: keys loaded
from a keys file, every supplier's key checked, the node's network checked). Claims and proofs
are signed, simulated, broadcast and confirmed exactly as against a Pocket full node.

The suppliers are real ``pokt1`` addresses of deterministic **test** keys (sha256 of a public
text: never use them anywhere else); the applications are addresses derived the same way. The
genesis stakes them for the demo's services and funds the supplier accounts for fees.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from relayminer.chain.factory import ChainConnection, build_chain
from relayminer.chain.pocket.keys import PocketKey
from relayminer.chain.pocket.settings import KeySources, PocketChainSettings
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.node.crypto import encode_address
from relayminer.chain.sim.node.genesis import LocalnetConfig, parse_localnet_config
from relayminer.chain.sim.node.node import LocalNode
from relayminer.keys import KeyBuilder

__all__ = [
    "FUNDING_UPOKT",
    "LocalnetWorld",
    "demo_application_addresses",
    "demo_supplier_keys",
    "localnet_config",
    "open_localnet_world",
]

#: liquid uPOKT each demo supplier account gets at genesis (pays the tx fees)
FUNDING_UPOKT = 10**12


def _seed(text: str) -> bytes:
    return hashlib.sha256(f"relayminer-demo/{text}".encode()).digest()


def demo_supplier_keys(n: int) -> list[PocketKey]:
    """Deterministic test keys of the demo's suppliers (public seeds: test use only)."""
    return [PocketKey.from_hex(_seed(f"supplier/{i}").hex()) for i in range(1, n + 1)]


def demo_application_addresses(services_by_app: dict[str, list[str]]) -> dict[str, list[str]]:
    """The demo's applications under real bech32 addresses (same services, same order)."""
    return {
        encode_address(_seed(f"application/{name}")[:20]): list(services)
        for name, services in services_by_app.items()
    }


def localnet_config(
    chain_doc: dict[str, Any], suppliers: list[str], applications: dict[str, list[str]]
) -> LocalnetConfig:
    """The genesis of the demo's localnet from the simulated demo's ``chain:`` block: same
    params and services, these suppliers (funded) and applications."""
    services = chain_doc["services"]
    return parse_localnet_config(
        {
            "chain_id": "pocket",
            "block_time_seconds": chain_doc["block_time_seconds"],
            "seed": chain_doc["seed"],
            "shared_params": chain_doc["shared_params"],
            "proof_params": chain_doc["proof_params"],
            "accounts": [{"address": s, "balance_upokt": FUNDING_UPOKT} for s in suppliers],
            "services": [{"id": sid, **fields} for sid, fields in services.items()],
            "applications": [{"address": a, "services": s} for a, s in applications.items()],
            "suppliers": [{"address": s, "services": list(services)} for s in suppliers],
        }
    )


@dataclass
class LocalnetWorld:
    """A running localnet and the miner's connection to it."""

    node: LocalNode
    #: the simulated chain inside the node (the load generator and the summary read it)
    sim: SimulatedChain
    #: the miner's chain: the Pocket client pointed at the node
    connection: ChainConnection
    settings: PocketChainSettings


@contextlib.asynccontextmanager
async def open_localnet_world(
    redis: Redis,
    config: LocalnetConfig,
    keys: list[PocketKey],
    key_builder: KeyBuilder,
    *,
    start_timeout_seconds: float = 10.0,
) -> AsyncIterator[LocalnetWorld]:
    """Start a :class:`LocalNode` on ``redis`` and a Pocket chain client on its endpoints
    (keys read from a private keys file, deleted on exit)."""
    node = LocalNode(redis, config, keys=key_builder)
    endpoints = await node.start()
    try:
        with tempfile.TemporaryDirectory(prefix="relayminer-demo-keys-") as tmp:
            keys_file = Path(tmp) / "keys.yaml"
            lines = [f'  - "{k.private_key_bytes().hex()}"' for k in keys]
            keys_file.write_text("\n".join(["keys:", *lines, ""]))
            keys_file.chmod(0o600)
            settings = PocketChainSettings(
                chain_id=endpoints.chain_id,
                grpc_endpoints=(endpoints.grpc,),
                rpc_url=endpoints.rpc,
                memo="relayminer demo",
                block_time_seconds=config.block_time_seconds,
                start_timeout_seconds=start_timeout_seconds,
                reconnect_backoff_max_seconds=1.0,
                keys=KeySources(keys_file=keys_file),
            )
            connection = await build_chain(
                settings,
                redis,
                keys=key_builder,
                suppliers=[k.address() for k in keys],
            )
            try:
                yield LocalnetWorld(node, node.app.chain, connection, settings)
            finally:
                await connection.close()
    finally:
        await node.stop()
