"""``relayminer status``: what it reads (both backends), how it renders, and ``--watch``.
``--json`` against a running deployment is in tests/ops/test_deployment.py."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from rich.console import Console

from relayminer.chain.sim.state import BlockRecord, SimChainKeys
from relayminer.cli import main
from relayminer.cli.status import _watch, render_status
from relayminer.inspection.status import DeploymentStatus, collect_status
from relayminer.keys import KeyBuilder
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.conftest import RealServer, RedisBackend

KB = KeyBuilder()
NOW = 1_800_000_000.0
A, B, C = "pokt1stata", "pokt1statb", "pokt1statc"


def snap(sup: str, sid: str, end: int, state: SessionState, **kw: object) -> SessionSnapshot:
    return SessionSnapshot(
        session_id=sid,
        supplier_operator_address=sup,
        service_id="anvil",
        application_address="pokt1app",
        session_start_height=end - 3,
        session_end_height=end,
        state=state,
        last_updated_at=datetime.fromtimestamp(NOW - end, UTC),
        **kw,  # type: ignore[arg-type]
    )


async def populate(redis: Redis) -> None:
    """Two replicas (one dead), suppliers A (owned, sessions in 3 windows) and B (owned by the
    dead replica: only a stream with a dead letter), C (a lease only)."""
    await redis.sadd(KB.miner_active_set_key(), "r1", "r2")
    await redis.set(KB.miner_instance_key("r1"), str(int((NOW - 1.5) * 1e9)))
    await redis.set(KB.miner_claim_key(A), "r1:aaaa", px=12_000)
    await redis.set(KB.miner_claim_key(B), "r2:bbbb")
    await redis.set(KB.miner_claim_key(C), "r1:cccc", px=9_000)
    sim = SimChainKeys(KB)
    await redis.set(sim.height, 42)
    await redis.hset(sim.blocks, "42", BlockRecord(42, b"\x01" * 32, NOW - 0.75).encode())
    store = RedisSessionStore(redis, SessionStoreConfig(A))
    for s in (
        snap(A, "s1", 4, SessionState.PROVED, claim_tx_hash="C1", proof_tx_hash="P1",
             settlement_outcome="settled_proven", settlement_height=14),
        snap(A, "s2", 8, SessionState.CLAIM_WINDOW_CLOSED, relay_count=5, total_compute_units=50),
        snap(A, "s3", 8, SessionState.PROBABILISTIC_PROVED, relay_count=2, total_compute_units=20,
             claim_tx_hash="C3"),
        snap(A, "s4", 12, SessionState.ACTIVE, relay_count=7, total_compute_units=70),
        snap(A, "s5", 12, SessionState.CLAIMING, relay_count=1, total_compute_units=10),
    ):  # fmt: skip
        await store.save(s)
    stream = KB.stream_key(B)
    await redis.xgroup_create(stream, KB.consumer_group(), id="0", mkstream=True)
    for i in range(3):
        await redis.xadd(stream, {"data": b"x%d" % i})
    await redis.xreadgroup(KB.consumer_group(), "r2", {stream: ">"}, count=1)
    await redis.xadd(stream + ":dead", {"id": "1-0", "reason": "bad"})


async def test_collect_status(backend: RedisBackend) -> None:
    await populate(backend.client)
    status = await collect_status(backend.client, clock=lambda: NOW)
    doc = status.as_dict()
    assert doc["namespace"] == "ha" and doc["taken_at"] == NOW
    assert doc["chain"] == {"height": 42, "block_age_seconds": 0.75}
    assert doc["replicas"] == [
        {"instance": "r1", "alive": True, "heartbeat_age_seconds": pytest.approx(1.5, abs=1e-3),
         "suppliers": [A, C]},
        {"instance": "r2", "alive": False, "heartbeat_age_seconds": None, "suppliers": [B]},
    ]  # fmt: skip
    a, b, c = status.suppliers
    assert [s.supplier for s in status.suppliers] == [A, B, C]
    assert a.owner == "r1" and a.lease_ttl_seconds is not None and 0 < a.lease_ttl_seconds <= 12
    assert a.sessions == 5
    assert a.current is not None and a.previous is not None
    assert (a.current.session_start_height, a.current.session_end_height) == (9, 12)
    assert a.current.states == {"active": 1, "claiming": 1}
    assert (a.current.relays, a.current.compute_units) == (8, 80)
    assert a.previous.states == {"claim_window_closed": 1, "probabilistic_proved": 1}
    assert a.last_claim is not None and a.last_proof is not None
    # s2 and s3 both end at 8 (the newest window past claiming): s3 was saved last.
    assert (a.last_claim.session_id, a.last_claim.result) == ("s3", "submitted")
    assert (a.last_proof.session_id, a.last_proof.result) == ("s3", "not required")
    assert b.owner == "r2" and b.lease_ttl_seconds is None  # no TTL on that key
    assert (b.stream_length, b.pending, b.lag, b.dead_letters) == (3, 1, 2, 1)
    assert b.current is None and b.last_claim is None
    assert c.owner == "r1" and c.stream_length == 0 and c.lag is None
    only = await collect_status(backend.client, supplier=B, clock=lambda: NOW)
    assert [s.supplier for s in only.suppliers] == [B]


async def test_collect_status_outcomes(backend: RedisBackend) -> None:
    store = RedisSessionStore(backend.client, SessionStoreConfig(A))
    await store.save(
        snap(A, "f1", 4, SessionState.PROOF_TX_ERROR, claim_tx_hash="C", proof_tx_hash="P")
    )
    await store.save(snap(A, "f2", 8, SessionState.CLAIM_SKIPPED))
    status = await collect_status(backend.client, clock=lambda: NOW)
    (a,) = status.suppliers
    assert a.last_claim is not None and (a.last_claim.session_id, a.last_claim.result) == (
        "f2",
        "skipped",
    )
    assert a.last_proof is not None and (a.last_proof.result, a.last_proof.tx_hash) == (
        "failed",
        "P",
    )
    assert status.chain is None and "chain" not in status.as_dict()
    assert status.replicas == []


async def test_empty_namespace(backend: RedisBackend) -> None:
    status = await collect_status(backend.client)
    assert status.suppliers == [] and status.replicas == [] and status.chain is None


async def test_render_status(backend: RedisBackend) -> None:
    await populate(backend.client)
    status = await collect_status(backend.client, clock=lambda: NOW)
    console = Console(record=True, width=200)
    console.print(render_status(status))
    text = console.export_text()
    assert "namespace 'ha'" in text and "chain height 42, latest block 0.8 s ago" in text
    assert "r1" in text and f"{A}, {C}" in text
    assert "current" in text and "9..12" in text and "active 1  claiming 1" in text
    assert "submitted (probabilistic_proved, session end 8, tx C3" in text
    assert "not required" in text
    empty = Console(record=True, width=120)
    empty.print(render_status(DeploymentStatus(namespace="x", taken_at=NOW, chain=None)))
    out = empty.export_text()
    assert "no replica registered" in out and "no suppliers found" in out


async def test_watch_refreshes_until_stopped(
    backend: RedisBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    await populate(backend.client)
    for json_output in (True, False):
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)  # stops after the first refresh
        await _watch(backend.client, KB, A, json_output, 0.05, stop)
    out = capsys.readouterr().out
    first = json.loads(out.splitlines()[0])
    assert [s["supplier"] for s in first["suppliers"]] == [A]
    assert "latest claim and proof" in out  # the rich screen


async def test_watch_shows_an_outage(
    backend: RedisBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = backend.broken_client()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    await _watch(broken, KB, None, True, 0.05, stop)
    line = capsys.readouterr().out.splitlines()[0]
    assert "error" in json.loads(line)


def test_status_cli_text_and_json(real_server: RealServer) -> None:
    async def setup() -> None:
        client = Redis.from_url(real_server.url, protocol=2)
        await client.flushall()
        await populate(client)
        await client.aclose()

    asyncio.run(setup())
    result = CliRunner().invoke(main, ["status", "--redis-url", real_server.url])
    assert result.exit_code == 0, result.output
    assert "replicas" in result.stdout and A in result.stdout
    result = CliRunner().invoke(
        main, ["status", "--redis-url", real_server.url, "--json", "--supplier", C]
    )
    doc = json.loads(result.stdout)
    assert [s["supplier"] for s in doc["suppliers"]] == [C]
