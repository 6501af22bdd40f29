"""``redis.wait_replicas`` on both backends: off by default (no command at all), and a ``WAIT``
that falls short (no replica here) is logged and counted while the batch stays accounted
(docs/redis-deployments.md, "Waiting for replicas"). The real replica cases are in
tests/runtime/test_sentinel_wait.py."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from relayminer.chain.base import Chain
from relayminer.config import RedisSection, parse_config
from relayminer.pipeline.replication import MARKER_CHANNEL, wait_for_replicas
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.leases import Fence
from relayminer.runtime.miner import Miner
from relayminer.smst.layout import SMSTLayout
from tests.conftest import RedisBackend
from tests.pipeline.factory import workload
from tests.pipeline.test_worker import assert_mined, publish

SUP = "pokt1waitreplicas"
PROBE = b"probe"


def short_total() -> float:
    labels = {"supplier": SUP}
    return REGISTRY.get_sample_value("ha_miner_wait_replicas_short_total", labels) or 0.0


class Markers:
    """Subscribed to the marker channel before the worker runs; :meth:`seen` publishes a probe
    and returns every message before it (an empty list proves no marker was published)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub()

    async def __aenter__(self) -> Markers:
        await self.pubsub.subscribe(MARKER_CHANNEL)
        first = await self.pubsub.get_message(timeout=5)
        assert first is not None and first["type"] == "subscribe"
        return self

    async def seen(self) -> list[bytes]:
        await self.client.publish(MARKER_CHANNEL, PROBE)
        out: list[bytes] = []
        while True:
            message = await self.pubsub.get_message(timeout=5)
            assert message is not None, "the probe never arrived"
            if message["data"] == PROBE:
                return out
            out.append(message["data"])

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_off_by_default_issues_no_command(backend: RedisBackend) -> None:
    msgs, expected = workload(5, [SUP], ["sess-a"], 120)
    await publish(backend.client, msgs)
    before = short_total()
    async with Markers(backend.new_client()) as markers:
        worker = RelayWorker(backend.client, SUP, WorkerConfig(consumer_name="w", batch_size=50))
        assert worker.config.wait_replicas == 0
        assert await worker.drain() == len(msgs)
        assert await markers.seen() == []  # no marker: no PUBLISH, so no WAIT pipeline either
    await assert_mined(backend.client, expected, layout=SMSTLayout.JOURNAL)
    assert short_total() == before


async def test_short_wait_warns_counts_and_keeps_the_batch(
    backend: RedisBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """No replica here: every accounting step's WAIT falls short (the real server replies 0
    after the timeout; fakeredis has no WAIT and errs). The batches stay accounted and acked."""
    msgs, expected = workload(6, [SUP], ["sess-a", "sess-b"], 120)
    await publish(backend.client, msgs)
    before = short_total()
    config = WorkerConfig(consumer_name="w", batch_size=50, wait_replicas=1, wait_timeout_ms=10)
    async with Markers(backend.new_client()) as markers:
        worker = RelayWorker(backend.client, SUP, config)
        with caplog.at_level(logging.WARNING, logger="relayminer.pipeline.replication"):
            assert await worker.drain() == len(msgs)
        batches = len(await markers.seen())
    assert batches == 3  # one marker per accounting step: 120 entries in batches of 50
    assert short_total() - before == batches
    warnings = [r for r in caplog.records if r.name == "relayminer.pipeline.replication"]
    assert len(warnings) == batches
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "by 0 of 1 replicas within 10 ms" in warnings[0].getMessage()
    assert getattr(warnings[0], "supplier") == SUP  # noqa: B009
    await assert_mined(backend.client, expected, layout=SMSTLayout.JOURNAL)
    pending = await backend.client.xpending(worker.consumer.stream, worker.consumer.group)
    assert pending["pending"] == 0


async def test_zero_replicas_is_not_sent(backend: RedisBackend) -> None:
    async with Markers(backend.new_client()) as markers:
        assert await wait_for_replicas(backend.client, SUP, 0, 10) == 0
        assert await markers.seen() == []


async def test_a_failing_wait_is_short_not_raised() -> None:
    before = short_total()
    assert await wait_for_replicas(Redis(port=1, socket_connect_timeout=1), SUP, 1, 10) == 0
    assert short_total() - before == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wait_replicas", -1),
        ("wait_replicas", True),
        ("wait_timeout_ms", 0),
        ("wait_timeout_ms", 1.5),
    ],
)
def test_worker_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"WorkerConfig.{field}"):
        WorkerConfig(**{field: value})  # type: ignore[arg-type]


def test_config_section() -> None:
    assert (RedisSection().wait_replicas, RedisSection().wait_timeout_ms) == (0, 1000)
    section = RedisSection(wait_replicas=2, wait_timeout_ms=250)
    assert (section.wait_replicas, section.wait_timeout_ms) == (2, 250)
    with pytest.raises(ValueError, match="wait_timeout_ms"):
        RedisSection(wait_timeout_ms=0)
    with pytest.raises(ValueError, match="wait_replicas"):
        RedisSection(wait_replicas=-1)


async def test_the_miner_passes_the_redis_section_to_its_workers(
    backend: RedisBackend,
) -> None:
    doc = {"suppliers": [SUP], "redis": {"wait_replicas": 2, "wait_timeout_ms": 250}}
    chain: Chain = None  # type: ignore[assignment]  # building a pipeline never calls it
    miner = Miner(parse_config(doc), backend.client, chain)
    worker = miner._pipeline(SUP, Fence("lease", "token")).worker
    assert (worker.config.wait_replicas, worker.config.wait_timeout_ms) == (2, 250)
