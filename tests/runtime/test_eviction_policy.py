"""An evicting ``maxmemory-policy`` can drop a tree or a dedup set without any error: the
miner refuses to start on one unless ``redis.allow_eviction`` is set (then it warns)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml
from prometheus_client import REGISTRY
from redis.exceptions import ResponseError

from relayminer.config import parse_config
from relayminer.runtime.miner import EvictionPolicyError, Miner, check_eviction_policy
from tests.conftest import RealServer, RedisBackend


def evicting_gauge() -> float | None:
    return REGISTRY.get_sample_value("ha_miner_redis_eviction_policy_evicting")


@pytest.fixture
async def real(real_server: RealServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(real_server.url, protocol=2, decode_responses=False)
    before = (await client.config_get("maxmemory-policy"))["maxmemory-policy"]
    try:
        yield client
    finally:
        await client.config_set("maxmemory-policy", before)
        await client.aclose()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_an_evicting_policy_refuses_to_start(real: aioredis.Redis, policy: str) -> None:
    await real.config_set("maxmemory-policy", policy)
    with pytest.raises(EvictionPolicyError, match=f"maxmemory-policy is '{policy}'"):
        await check_eviction_policy(real, allow_eviction=False)
    assert evicting_gauge() == 1


async def test_allowed_eviction_warns(
    real: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await real.config_set("maxmemory-policy", "allkeys-lru")
    with caplog.at_level(logging.WARNING, logger="relayminer.runtime.miner"):
        assert await check_eviction_policy(real, allow_eviction=True) == "allkeys-lru"
    assert any("may evict" in r.getMessage() for r in caplog.records)
    assert evicting_gauge() == 1


async def test_noeviction_passes(real: aioredis.Redis) -> None:
    await real.config_set("maxmemory-policy", "noeviction")
    assert await check_eviction_policy(real, allow_eviction=False) == "noeviction"
    assert evicting_gauge() == 0


class _NoConfig(aioredis.Redis):
    async def config_get(self, *args: object, **kwargs: object) -> dict[bytes, bytes]:  # type: ignore[override]
        raise ResponseError("unknown command 'CONFIG'")


async def test_a_server_without_config_is_logged_as_unchecked(
    real_server: RealServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = _NoConfig.from_url(real_server.url, protocol=2)
    try:
        with caplog.at_level(logging.WARNING, logger="relayminer.runtime.miner"):
            assert await check_eviction_policy(client, allow_eviction=False) is None
        assert any("could not check" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()


async def test_miner_run_refuses_before_taking_any_lease(
    backend: RedisBackend, real: aioredis.Redis
) -> None:
    if backend.kind == "real":
        await real.config_set("maxmemory-policy", "allkeys-lru")
    config = parse_config({"suppliers": ["pokt1a"]})
    miner = Miner(config, backend.client, chain=None)  # type: ignore[arg-type]
    stop = asyncio.Event()
    stop.set()
    if backend.kind == "real":
        with pytest.raises(EvictionPolicyError):
            await miner.run(stop)
        assert await backend.client.keys("*claim*") == []
    else:  # fakeredis: CONFIG GET answers or is unknown; either way the miner may start
        await miner.run(stop)


def test_relayminer_run_exits_with_one_line(real_server: RealServer, tmp_path: Path) -> None:
    async def set_policy(policy: str) -> str:
        client = aioredis.Redis.from_url(real_server.url, protocol=2)
        try:
            old = (await client.config_get("maxmemory-policy"))["maxmemory-policy"]
            await client.config_set("maxmemory-policy", policy)
            return str(old)
        finally:
            await client.aclose()

    path = tmp_path / "miner.yaml"
    doc = {"suppliers": ["pokt1a"], "redis": {"url": real_server.url}, "metrics": {"port": 0}}
    path.write_text(yaml.safe_dump(doc))
    old = asyncio.run(set_policy("allkeys-lru"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "relayminer", "run", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        asyncio.run(set_policy(old))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("relayminer run:")]
    assert len(errors) == 1 and "maxmemory-policy is 'allkeys-lru'" in errors[0]
    assert "Traceback" not in proc.stderr
