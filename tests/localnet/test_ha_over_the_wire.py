"""HA failover over the wire, as processes (the real server only): one ``relayminer localnet``
and two ``relayminer run`` replicas with ``chain.type: pocket`` (same supplier, same keys file,
one Redis). The lease owner is killed (SIGKILL) in the middle of a session with relays in
flight; the other replica takes the lease over within its TTL, reclaims the pending relays,
resumes the session's tree and claims, proves and settles it on the localnet, every
transaction signed by the surviving replica and checked by the node over loopback. The claimed
root is the root of exactly the relays published: nothing lost, nothing counted twice.

The localnet produces the blocks; the test waits on them (read from the localnet's Redis
through the simulated chain), never on timers.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from relayminer import SparseMerkleSumTrie, session_tree_root
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request, mined_relay_message
from relayminer.keys import KeyBuilder
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import start_server
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.cli.watched import Watched
from tests.localnet.processes import (
    Localnet,
    pocket_chain_block,
    start_localnet,
    until,
    write_keys_file,
)
from tests.localnet.support import APP, CUPR, SUPPLIER, make_config

pytestmark = pytest.mark.slow
SUP, SVC = SUPPLIER.address, "anvil"
TTL, RENEW = 2.0, 0.4  # as tests/runtime/test_ha_processes.py
BLOCK_TIME = 0.3
SESSION_BLOCKS = 12


def replica_doc(url: str, localnet: Localnet, keys: Path, instance: str) -> dict[str, object]:
    return {
        "suppliers": [SUP],
        "instance_id": instance,
        "redis": {"url": url},
        "worker": {"batch_size": 100, "block_ms": 100, "claim_idle_ms": 300},
        "leases": {"ttl_seconds": TTL, "renew_seconds": RENEW},
        "metrics": {"enabled": False},
        "logging": {"level": "INFO"},
        "chain": pocket_chain_block(localnet, keys, BLOCK_TIME),
    }


class Failover:
    """The test's side of the failover: it reads the localnet's chain and the miners' Redis
    state, publishes relays like a relayer and kills the owner."""

    def __init__(self, url: str, replicas: dict[str, Watched], start: Callable[[str], None]):
        self.redis = connect(url)
        self.keys = KeyBuilder()
        self.store = RedisSessionStore(
            self.redis, SessionStoreConfig(SUP, self.keys.miner_sessions_prefix(), 7200)
        )
        self.replicas = replicas
        self.start = start
        self.expected = SparseMerkleSumTrie()  # every relay published, built independently
        self.published = 0
        self.nonce = 0

    async def owner(self) -> str:
        token = await self.redis.get(self.keys.miner_claim_key(SUP))
        if not token:
            return ""
        text = token.decode() if isinstance(token, bytes) else token
        return text.split(":")[0]

    async def owned_by(self, instance: str) -> bool:
        return await self.owner() == instance

    async def publish(self, chain: SimulatedChain, header_height: int, n: int) -> None:
        header = (await chain.get_session(APP.address, SVC, header_height)).header
        msgs = []
        for _ in range(n):
            self.nonce += 1
            relay = build_relay(header, SUP, jsonrpc_request(self.nonce), b'{"result":"0x1"}')
            self.expected.update(relay.relay_hash, relay.relay_bytes, CUPR)
            msgs.append(mined_relay_message(relay, header, SUP, CUPR))
        await RelayPublisher(self.redis).publish_batch(msgs)
        self.published += n

    async def session(self, sid: str) -> SessionSnapshot | None:
        return await self.store.get(sid)

    async def run(self) -> None:
        chain = await SimulatedChain.attach(self.redis, keys=self.keys)
        try:
            await self._scenario(chain)
        finally:
            await chain.close()
            await self.redis.aclose()

    async def _scenario(self, chain: SimulatedChain) -> None:
        self.start("A")
        await until(chain, lambda: self.owned_by("replica-A"))
        self.start("B")
        # A fresh session, so the kill lands in its middle.
        first = (await chain.get_session(APP.address, SVC, await _next_height(chain))).header
        await until(chain, lambda: _reached(chain, first.session_end_block_height + 1))
        height = await _next_height(chain)
        header = (await chain.get_session(APP.address, SVC, height)).header
        sid, end = header.session_id, header.session_end_block_height

        for _ in range(3):  # the first part of the session: A mines
            await self.publish(chain, height, 150)
            await chain.wait_for_block(await _next_height(chain), timeout=30)
        await until(chain, lambda: _counted(self.session(sid)))
        self.replicas["A"].proc.send_signal(signal.SIGKILL)  # mid-session, relays in flight
        self.replicas["A"].proc.wait()
        killed_at = time.monotonic()
        await self.publish(chain, height, 300)  # relayers go on while nobody owns the supplier
        assert (await chain.latest_block()).height < end - 1, "the kill must land mid-session"

        await until(chain, lambda: self.owned_by("replica-B"))
        takeover = time.monotonic() - killed_at
        sys.stderr.write(f"takeover after the kill: {takeover:.2f}s\n")
        assert takeover <= TTL + RENEW + 1.0, f"takeover took {takeover:.2f}s"

        async def claimed() -> bool:
            snap = await self.session(sid)
            return snap is not None and snap.claimed_root_hash is not None

        await until(chain, claimed)
        expected_root = self.expected.root()
        assert await session_tree_root(self.redis, SUP, sid) == expected_root

        async def settled() -> bool:
            snap = await self.session(sid)
            return snap is not None and snap.settlement_outcome is not None

        await until(chain, settled)
        snap = await self.session(sid)
        assert snap is not None
        assert snap.state is SessionState.PROVED
        assert snap.settlement_outcome == "settled_proven"
        assert snap.claim_tx_hash and snap.proof_tx_hash
        assert (snap.relay_count, snap.total_compute_units) == (
            self.published,
            self.published * CUPR,
        )
        assert snap.claimed_root_hash == expected_root
        assert await self.redis.xlen(self.keys.stream_key(SUP)) == 0
        assert await self.redis.xlen(self.keys.dead_letter_stream_key(SUP)) == 0


def test_owner_killed_mid_session_replica_proves_and_settles_on_a_localnet(
    tmp_path: Path,
) -> None:
    server = start_server()
    localnet: Localnet | None = None
    replicas: dict[str, Watched] = {}
    try:
        genesis = make_config(
            block_time_seconds=BLOCK_TIME,
            shared_params={
                "num_blocks_per_session": SESSION_BLOCKS,
                "grace_period_end_offset_blocks": 1,
                "claim_window_open_offset_blocks": 1,
                "claim_window_close_offset_blocks": 8,
                "proof_window_open_offset_blocks": 0,
                "proof_window_close_offset_blocks": 8,
            },
            proof_params={"proof_requirement_threshold_upokt": 0},  # every claim is proved
        )
        localnet = start_localnet(tmp_path, genesis, server.url)
        keys = write_keys_file(tmp_path / "keys.yaml", SUPPLIER)

        def start(name: str) -> None:
            path = tmp_path / f"{name}.yaml"
            doc = replica_doc(server.url, localnet, keys, f"replica-{name}")
            path.write_text(yaml.safe_dump(doc))
            replicas[name] = Watched(["run", "--config", str(path)])

        asyncio.run(Failover(server.url, replicas, start).run())

        survivor = replicas["B"]
        survivor.proc.send_signal(signal.SIGTERM)
        code, _ = survivor.finish()
        assert code == 0, survivor.stderr
        for replica in replicas.values():
            assert bytes(SUPPLIER.private.secret).hex() not in replica.stderr
        localnet.process.proc.send_signal(signal.SIGTERM)
        code, _ = localnet.process.finish()
        assert code == 0, localnet.process.stderr
    finally:
        procs = [*replicas.values(), *([localnet.process] if localnet else [])]
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
        server.stop()
        for name, replica in replicas.items():
            sys.stderr.write(f"--- replica {name} ---\n{replica.stderr[-3000:]}\n")


async def _next_height(chain: SimulatedChain) -> int:
    return (await chain.latest_block()).height + 1


async def _reached(chain: SimulatedChain, height: int) -> bool:
    return (await chain.latest_block()).height >= height


async def _counted(snap: Awaitable[SessionSnapshot | None]) -> bool:
    session = await snap
    return session is not None and session.relay_count > 0
