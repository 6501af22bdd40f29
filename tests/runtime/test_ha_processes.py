"""HA with real processes: two `relayminer run` replicas share one Redis; the owner of a
supplier is killed (SIGKILL) in the middle of a session; the other replica takes the lease over
within its TTL, reclaims the dead owner's pending relays, resumes the session's tree and still
claims and proves it. Nothing is lost, nothing is counted twice.

The test process produces the simulated chain's blocks (the replicas only read it) and waits on
block events, never on timers.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request, mined_relay_message
from relayminer.chain.sim.setup import sim_chain_config
from relayminer.config import parse_config
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.runtime.embedded import free_loopback_port
from relayminer.sessions.model import SessionState, decode_hash
from relayminer.smst.nodes import digest_count, digest_sum
from tests.conftest import RealServer

pytestmark = pytest.mark.slow
SUP, APP, SVC = "pokt1ha", "pokt1app", "svc"
TTL, RENEW = 2.0, 0.4


def config_doc(url: str, instance: str, metrics_port: int) -> dict[str, object]:
    return {
        "suppliers": [SUP],
        "instance_id": instance,
        "redis": {"url": url},
        "worker": {"batch_size": 100, "block_ms": 100, "claim_idle_ms": 300},
        "leases": {"ttl_seconds": TTL, "renew_seconds": RENEW},
        "metrics": {"enabled": True, "port": metrics_port},
        "logging": {"level": "INFO"},
        "chain": {
            "produce_blocks": False,
            "block_time_seconds": 0.25,
            "shared_params": {
                "num_blocks_per_session": 12,
                "claim_window_close_offset_blocks": 8,
                "proof_window_close_offset_blocks": 8,
                "compute_units_to_tokens_multiplier": 1_000_000,
            },
            "proof_params": {
                "proof_requirement_threshold_upokt": 0,
                "proof_request_probability": 0.0,
            },
            "services": {SVC: {"compute_units_per_relay": 10}},
            "applications": {APP: [SVC]},
            "suppliers": {SUP: [SVC]},
        },
    }


async def until(
    chain: SimulatedChain, condition: Callable[[], Awaitable[bool]], max_blocks: int = 400
) -> int:
    """Check ``condition`` at every new block; return the height at which it held."""
    height = (await chain.latest_block()).height
    for _ in range(max_blocks):
        if await condition():
            return height
        height = (await chain.wait_for_block(height + 1, timeout=30)).height
    raise AssertionError("condition not reached")


async def test_owner_killed_mid_session_replica_takes_over_and_proves(
    real_server: RealServer, tmp_path: Path
) -> None:
    r = aioredis.Redis.from_url(real_server.url, protocol=2)
    await r.flushall()
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    ports = {"A": free_loopback_port(), "B": free_loopback_port()}
    docs = {k: config_doc(real_server.url, f"replica-{k}", ports[k]) for k in ports}
    chain_config = sim_chain_config(parse_config(docs["A"]).chain, [SUP])
    chain = SimulatedChain(r, chain_config)
    await chain.init()
    stop_chain = asyncio.Event()
    producer = asyncio.create_task(chain.run(stop_chain))

    def start(name: str) -> subprocess.Popen[bytes]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(docs[name]))
        log = (tmp_path / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "relayminer", "run", "--config", str(path)],
            stdout=log,
            stderr=log,
        )
        replicas[name] = proc
        return proc

    async def owner() -> str:
        token = await r.get(f"ha:miner:claim:{SUP}")
        return token.decode().split(":")[0] if token else ""

    async def snapshot(sid: str) -> dict[bytes, bytes]:
        return await r.hgetall(f"ha:miner:sessions:{SUP}:{sid}")  # type: ignore[no-any-return]

    try:
        start("A")
        await until(chain, lambda: _eq(owner(), "replica-A"))
        start("B")
        # A fresh session, so the kill lands in its middle.
        h = (await chain.latest_block()).height
        first = (await chain.get_session(APP, SVC, h + 1)).header
        await until(chain, lambda: _gt_height(chain, first.session_end_block_height))
        header = (await chain.get_session(APP, SVC, (await chain.latest_block()).height + 1)).header
        sid, end = header.session_id, header.session_end_block_height
        published, nonce = 0, 0

        async def publish(n: int) -> None:
            nonlocal published, nonce
            msgs = []
            for _ in range(n):
                nonce += 1
                relay = build_relay(header, SUP, jsonrpc_request(nonce), b'{"result":"0x1"}')
                msgs.append(mined_relay_message(relay, header, SUP, 10))
            await RelayPublisher(r).publish_batch(msgs)
            published += n

        for _ in range(3):  # first third of the session: A mines
            await publish(150)
            await chain.wait_for_block((await chain.latest_block()).height + 1, timeout=30)
        await until(chain, lambda: _counted(snapshot(sid)))
        replicas["A"].send_signal(signal.SIGKILL)  # mid-session, with relays in flight
        replicas["A"].wait()
        killed_at = time.monotonic()
        await publish(300)  # relayers keep publishing while nobody owns the supplier
        assert (await chain.latest_block()).height < end - 1, "the kill must land mid-session"

        await until(chain, lambda: _eq(owner(), "replica-B"))
        takeover = time.monotonic() - killed_at
        sys.stderr.write(f"takeover after the kill: {takeover:.2f}s\n")
        assert takeover <= TTL + RENEW + 1.0, f"takeover took {takeover:.2f}s"

        async def settled() -> bool:
            snap = await snapshot(sid)
            return snap.get(b"settlement_outcome") is not None

        await until(chain, settled)
        snap = decode_hash("k", await snapshot(sid))
        assert snap.state is SessionState.PROVED
        assert snap.settlement_outcome == "settled_proven"
        assert (snap.relay_count, snap.total_compute_units) == (published, published * 10)
        assert snap.claimed_root_hash is not None
        assert (digest_count(snap.claimed_root_hash), digest_sum(snap.claimed_root_hash)) == (
            published,
            published * 10,
        )
        assert await r.xlen(f"ha:relays:{SUP}") == 0
        assert await r.xlen(f"ha:relays:{SUP}:dead") == 0

        url = f"http://127.0.0.1:{ports['B']}/metrics"
        text = await asyncio.to_thread(_http_get, url)
        assert f'ha_miner_supplier_lease_owned{{supplier="{SUP}"}} 1.0' in text
        assert "ha_miner_relays_mined_total" in text and "ha_miner_proofs_submitted_total" in text

        replicas["B"].send_signal(signal.SIGTERM)
        assert replicas["B"].wait(timeout=30) == 0
        assert await r.get(f"ha:miner:claim:{SUP}") is None  # released on shutdown
    finally:
        for proc in replicas.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stop_chain.set()
        await producer
        await chain.close()
        await r.aclose()
        for name in replicas:
            log = tmp_path / f"{name}.log"
            if log.exists():
                sys.stderr.write(f"--- {name} ---\n{log.read_text()[-3000:]}\n")


def _http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()  # type: ignore[no-any-return]


async def _eq(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


async def _gt_height(chain: SimulatedChain, height: int) -> bool:
    return (await chain.latest_block()).height >= height


async def _counted(snap: Awaitable[dict[bytes, bytes]]) -> bool:
    return int((await snap).get(b"relay_count", b"0")) > 0
