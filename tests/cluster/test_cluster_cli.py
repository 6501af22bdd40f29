"""Every command on a ``redis-cluster://`` URL: ``inspect`` and ``status`` read a populated
cluster (scans run on every master), ``run`` mines on it, and the start-up eviction check reads
every master."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from redis.asyncio.cluster import RedisCluster

from relayminer.cli import main
from relayminer.keys import KeyBuilder
from relayminer.runtime.miner import EvictionPolicyError, check_eviction_policy
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.cluster.cluster_support import ClusterGroup, wait_until
from tests.cluster.mining import publish
from tests.lifecycle.support import APP2, SUP1, SUP2, SVC2, World
from tests.pipeline.factory import workload

KB = KeyBuilder.cluster()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def populate(redis: RedisCluster) -> tuple[str, str]:
    world = await World.create(redis)  # type: ignore[arg-type]
    try:
        claimed = await world.relays(SUP1, 5)  # session 1 (blocks 1..4)
        await world.relays(SUP2, 2, app=APP2)
        await world.run_to(6)  # claim window of session 1 opens at 6: claimed, tree sealed
        active = await world.relays(SUP1, 3, service=SVC2)
        await world.step()
        await world.relays(SUP2, 3, app=APP2)  # left unread: lag
        await redis.xreadgroup(KB.consumer_group(), "stuck", {KB.stream_key(SUP2): ">"}, count=1)
        await redis.xadd(KB.dead_letter_stream_key(SUP2), {"reason": "test"})
        await redis.set(KB.miner_claim_key(SUP1), "r1:aaaa", px=12_000)
        await redis.sadd(KB.miner_active_set_key(), "r1")
        await redis.set(KB.miner_instance_key("r1"), str(time.time_ns()))
        return claimed, active
    finally:
        await world.close()


def test_inspect_and_status_on_a_cluster(
    redis_cluster: ClusterGroup,
) -> None:
    async def go() -> tuple[str, str]:
        client = redis_cluster.client()
        try:
            await client.flushall(target_nodes=RedisCluster.PRIMARIES)
            return await populate(client)
        finally:
            await client.aclose()

    claimed, active = asyncio.run(go())
    url = redis_cluster.url
    sessions = json.loads(invoke("inspect", "sessions", "--redis-url", url, "--json"))
    assert set(sessions) == {SUP1, SUP2}  # found by scanning every master
    rows = {r["session_id"]: r for r in sessions[SUP1]}
    assert (rows[claimed]["relay_count"], rows[claimed]["state"]) == (5, "claimed")
    assert (rows[active]["relay_count"], rows[active]["state"]) == (3, "active")
    smst = json.loads(invoke("inspect", "smst", "--redis-url", url, "--json"))
    rows = {r["session_id"]: r for r in smst[SUP1]}
    assert (rows[claimed]["count"], rows[claimed]["sum"], rows[claimed]["leaves"]) == (5, 50, 5)
    assert rows[claimed]["sealed_root"] is not None and rows[active]["sealed_root"] is None
    streams = json.loads(invoke("inspect", "streams", "--redis-url", url, "--json"))
    (row,) = streams[SUP2]
    assert (row["length"], row["pending"], row["lag"], row["dead_letters"]) == (3, 1, 2, 1)
    assert row["dead_letter_stream"] == KB.dead_letter_stream_key(SUP2)
    status = json.loads(invoke("status", "--redis-url", url, "--json"))
    by_supplier = {s["supplier"]: s for s in status["suppliers"]}
    assert set(by_supplier) == {SUP1, SUP2}
    assert by_supplier[SUP1]["owner"] == "r1" and by_supplier[SUP2]["owner"] is None
    assert by_supplier[SUP2]["dead_letters"] == 1
    assert [r["instance"] for r in status["replicas"]] == ["r1"]
    assert status["replicas"][0]["suppliers"] == [SUP1]
    assert status["chain"]["height"] == 7  # the simulated chain, in its own slot


async def test_the_eviction_check_reads_every_master(redis_cluster: ClusterGroup) -> None:
    client = redis_cluster.client()
    last = redis_cluster.masters[-1].client()
    try:
        await client.initialize()
        assert await check_eviction_policy(client, allow_eviction=False) == "noeviction"  # type: ignore[arg-type]
        await last.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(EvictionPolicyError, match="allkeys-lru"):
            await check_eviction_policy(client, allow_eviction=False)  # type: ignore[arg-type]
    finally:
        await last.config_set("maxmemory-policy", "noeviction")
        await last.aclose()
        await client.aclose()


@pytest.mark.slow
async def test_relayminer_run_mines_on_a_cluster(
    redis_cluster: ClusterGroup, cluster_client: RedisCluster, tmp_path: Path
) -> None:
    suppliers = ["pokt1runa", "pokt1runb", "pokt1runc"]
    doc = {
        "suppliers": suppliers,
        "instance_id": "cluster-run",
        "redis": {"url": redis_cluster.url},
        "worker": {"batch_size": 100, "block_ms": 50},
        "metrics": {"enabled": False},
        "chain": {"block_time_seconds": 0.2},
    }
    path = tmp_path / "miner.yaml"
    path.write_text(yaml.safe_dump(doc))
    log = (tmp_path / "miner.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relayminer",
        "run",
        "--config",
        str(path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        msgs, expected = workload(5, suppliers, ["sess-a"], 300)
        await publish(cluster_client, msgs)

        async def mined() -> bool:
            for (sup, sess), exp in expected.items():
                store = RedisSessionStore(cluster_client, SessionStoreConfig(sup))  # type: ignore[arg-type]
                snap = await store.get(sess)
                if snap is None or snap.relay_count != exp.relay_count:
                    return False
            return True

        await wait_until(mined, 60, "relayminer run mined every relay")
        owners = {await cluster_client.get(KB.miner_claim_key(s)) for s in suppliers}
        assert all(o is not None and o.startswith(b"cluster-run:") for o in owners)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    output = (tmp_path / "miner.log").read_text()
    assert "Traceback" not in output and "ERROR" not in output, output[-3000:]
