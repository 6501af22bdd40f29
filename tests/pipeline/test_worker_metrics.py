"""Every metric of the accounting path moves in production: relays drained through RelayWorker
(with repeats) on both backends (issue 9 item 2)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from tests.conftest import RedisBackend
from tests.pipeline.factory import workload
from tests.pipeline.test_worker import publish

SUP = "pokt1metrics"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot() -> dict[str, float]:
    return {
        "created": sample("ha_miner_sessions_created_total", supplier=SUP, service_id="svc-a")
        + sample("ha_miner_sessions_created_total", supplier=SUP, service_id="svc-b"),
        "marked": sample("ha_miner_dedup_marked_total"),
        "misses": sample("ha_miner_dedup_misses_total"),
        "hits": sample("ha_miner_dedup_redis_cache_hits_total"),
        "saved": sample("ha_miner_session_snapshots_saved_total", supplier=SUP),
        "mined": sample("ha_miner_relays_mined_total", supplier=SUP),
        "duplicates": sample("ha_miner_relays_rejected_total", supplier=SUP, reason="duplicate"),
        "consumed": sample("ha_miner_relays_consumed_from_stream_total", supplier=SUP),
        "batches": sample("ha_miner_batch_processing_seconds_count", supplier=SUP),
    }


async def test_draining_relays_moves_every_accounting_metric(backend: RedisBackend) -> None:
    msgs, expected = workload(31, [SUP], ["sess-a", "sess-b"], 250, duplicate_every=5)
    repeats = len(msgs) - 250
    await publish(backend.client, msgs)
    before = snapshot()
    w = RelayWorker(backend.client, SUP, WorkerConfig(consumer_name="m", batch_size=100))
    assert await w.drain() == len(msgs)
    after = snapshot()
    moved = {k: after[k] - before[k] for k in before}
    counted = sum(e.relay_count for e in expected.values())
    assert moved["created"] == 2 and moved["saved"] >= 2
    assert moved["marked"] == moved["misses"] == moved["mined"] == counted
    assert moved["hits"] == moved["duplicates"] == repeats
    assert moved["consumed"] == len(msgs)
    assert moved["batches"] >= 1
