"""Helpers of the process tests over the wire: a ``relayminer localnet`` process, the keys file
and ``chain.type: pocket`` block of a ``relayminer run`` configuration pointed at it, and a wait
on the localnet's blocks (read from its Redis through the simulated chain)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.node.genesis import LocalnetConfig
from tests.cli.watched import Watched
from tests.localnet.support import CHAIN_ID, Key


@dataclass(frozen=True)
class Localnet:
    """A running ``relayminer localnet`` and the endpoints of its ready line."""

    process: Watched
    rpc: str
    grpc: str


def start_localnet(tmp_path: Path, genesis: LocalnetConfig, redis_url: str) -> Localnet:
    """Start ``relayminer localnet`` on ``redis_url`` and return once it is ready."""
    path = tmp_path / "localnet.yaml"
    path.write_text(yaml.safe_dump(genesis.model_dump(mode="json")))
    process = Watched(["localnet", "--config", str(path), "--redis-url", redis_url])
    ready = process.wait_for_line("localnet ready")
    rpc = re.search(r"rpc=(\S+)", ready)
    grpc = re.search(r"grpc=(\S+)", ready)
    assert rpc is not None and grpc is not None, ready
    return Localnet(process, rpc.group(1), grpc.group(1))


def write_keys_file(path: Path, *keys: Key) -> Path:
    """A ``keys_file`` holding the hex private keys of ``keys``."""
    lines = "".join(f'  - "{bytes(k.private.secret).hex()}"\n' for k in keys)
    path.write_text(f"keys:\n{lines}")
    return path


def pocket_chain_block(localnet: Localnet, keys_file: Path, block_time: float) -> dict[str, object]:
    """The ``chain:`` block of a miner configuration using ``localnet`` as its Pocket node."""
    return {
        "type": "pocket",
        "chain_id": CHAIN_ID,
        "rpc_url": localnet.rpc,
        "grpc_endpoints": [localnet.grpc],
        "gas_price_upokt": "0.01",
        "block_time_seconds": block_time,
        "keys": {"keys_file": str(keys_file)},
    }


async def until(
    chain: SimulatedChain, condition: Callable[[], Awaitable[bool]], max_blocks: int = 80
) -> int:
    """Check ``condition`` at every new block, for at most ``max_blocks`` blocks; return the
    height at which it held."""
    height = (await chain.latest_block()).height
    for _ in range(max_blocks):
        if await condition():
            return height
        height = (await chain.wait_for_block(height + 1, timeout=30)).height
    raise AssertionError(f"condition not reached within {max_blocks} blocks")
