"""Characterization of the deduplicator (Go: pocket-relay-miner `miner/deduplicator.go`;
API.md fix 4)."""

from __future__ import annotations

import hashlib

import pytest
from prometheus_client import REGISTRY

from relayminer import (
    ClosedError,
    Deduplicator,
    DeduplicatorConfig,
    RedisDeduplicator,
    RelayMinerError,
)
from tests.conftest import RedisBackend
from tests.helpers import release_together

# Each characterization test runs three times per session (shuffled with the rest).
pytestmark = pytest.mark.repeat(3)


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.fixture
def dedup(backend: RedisBackend) -> RedisDeduplicator:
    return RedisDeduplicator(backend.client, DeduplicatorConfig())


async def test_empty_session_is_not_duplicate(dedup: RedisDeduplicator) -> None:
    assert await dedup.is_duplicate(h("relay-1"), "sess-1") is False


async def test_first_relay_not_duplicate_then_duplicate_after_mark(
    dedup: RedisDeduplicator,
) -> None:
    relay = h("relay-1")
    assert await dedup.is_duplicate(relay, "sess-1") is False
    await dedup.mark_processed(relay, "sess-1")
    assert await dedup.is_duplicate(relay, "sess-1") is True


async def test_different_sessions_isolated(dedup: RedisDeduplicator) -> None:
    relay = h("relay-1")
    await dedup.mark_processed(relay, "sess-A")
    assert await dedup.is_duplicate(relay, "sess-A") is True
    assert await dedup.is_duplicate(relay, "sess-B") is False


async def test_different_hashes_isolated(dedup: RedisDeduplicator) -> None:
    await dedup.mark_processed(h("relay-A"), "sess-1")
    assert await dedup.is_duplicate(h("relay-B"), "sess-1") is False


async def test_many_hashes_tracked(backend: RedisBackend, dedup: RedisDeduplicator) -> None:
    hashes = [h(f"relay-{i}") for i in range(250)]
    for relay in hashes[:200]:
        await dedup.mark_processed(relay, "sess-1")
    assert [await dedup.is_duplicate(x, "sess-1") for x in hashes] == [True] * 200 + [False] * 50
    assert await backend.client.scard("ha:miner:dedup:session:sess-1") == 200


async def test_mark_processed_batch(dedup: RedisDeduplicator) -> None:
    batch = [h("a"), h("b"), h("c")]
    await dedup.mark_processed_batch(batch, "sess-1")
    for relay in batch:
        assert await dedup.is_duplicate(relay, "sess-1") is True
    assert await dedup.is_duplicate(h("unrelated"), "sess-1") is False


async def test_mark_processed_batch_empty_touches_nothing(backend: RedisBackend) -> None:
    # A broken client proves that an empty batch makes no Redis call at all.
    dedup = RedisDeduplicator(backend.broken_client())
    await dedup.mark_processed_batch([], "sess-1")
    await dedup.mark_processed_batch((), "sess-1")


async def test_cleanup_session(backend: RedisBackend, dedup: RedisDeduplicator) -> None:
    await dedup.mark_processed(h("relay-1"), "sess-1")
    assert await backend.client.exists("ha:miner:dedup:session:sess-1") == 1
    await dedup.cleanup_session("sess-1")
    assert await backend.client.exists("ha:miner:dedup:session:sess-1") == 0
    assert await dedup.is_duplicate(h("relay-1"), "sess-1") is False


async def test_ttl_applied_on_mark(backend: RedisBackend, dedup: RedisDeduplicator) -> None:
    await dedup.mark_processed(h("relay-1"), "sess-1")
    assert await backend.client.ttl("ha:miner:dedup:session:sess-1") == 300


async def test_ttl_refreshed_on_subsequent_mark(
    backend: RedisBackend, dedup: RedisDeduplicator
) -> None:
    key = "ha:miner:dedup:session:sess-1"
    await dedup.mark_processed(h("relay-1"), "sess-1")
    await backend.client.expire(key, 150)  # as if 150 s had passed
    assert await backend.client.ttl(key) == 150
    await dedup.mark_processed(h("relay-2"), "sess-1")
    assert await backend.client.ttl(key) == 300


async def test_batch_mark_refreshes_ttl(backend: RedisBackend, dedup: RedisDeduplicator) -> None:
    key = "ha:miner:dedup:session:sess-1"
    await dedup.mark_processed(h("relay-1"), "sess-1")
    await backend.client.expire(key, 10)
    await dedup.mark_processed_batch([h("relay-2")], "sess-1")
    assert await backend.client.ttl(key) == 300


async def test_ttl_comes_from_configuration(backend: RedisBackend) -> None:
    config = DeduplicatorConfig(key_prefix="ha:miner:dedup", ttl_blocks=40, block_time_seconds=6)
    assert config.ttl_seconds == 240
    dedup = RedisDeduplicator(backend.client, config)
    await dedup.mark_processed(h("relay-1"), "sess-1")
    assert await backend.client.ttl("ha:miner:dedup:session:sess-1") == 240


async def test_stores_raw_bytes_not_hex(backend: RedisBackend, dedup: RedisDeduplicator) -> None:
    digest = h("relay-raw")
    await dedup.mark_processed(digest, "sess-1")
    members = await backend.client.smembers("ha:miner:dedup:session:sess-1")
    assert members == {digest}
    assert len(next(iter(members))) == 32


async def test_concurrent_mark_and_check(backend: RedisBackend) -> None:
    writers, per_writer = 8, 100
    clients = [backend.new_client() for _ in range(writers * 2)]
    dedups = [RedisDeduplicator(c) for c in clients]
    hashes = [[h(f"w{w}-r{i}") for i in range(per_writer)] for w in range(writers)]

    async def task(i: int) -> int:
        if i < writers:  # writer
            for relay in hashes[i]:
                await dedups[i].mark_processed(relay, "sess-c")
            return 0
        seen = 0  # concurrent reader: never fails, sees a growing set
        for relay in hashes[i - writers]:
            seen += await dedups[i].is_duplicate(relay, "sess-c")
        return seen

    results = await release_together(writers * 2, task)
    assert all(0 <= r <= per_writer for r in results)
    dedup = RedisDeduplicator(backend.client)
    for group in hashes:
        for relay in group:
            assert await dedup.is_duplicate(relay, "sess-c") is True
    assert await backend.client.scard("ha:miner:dedup:session:sess-c") == writers * per_writer


async def test_concurrent_dedup_same_hash_all_see_it_after(backend: RedisBackend) -> None:
    relay = h("contended")
    dedups = [RedisDeduplicator(backend.new_client()) for _ in range(32)]
    await release_together(32, lambda i: dedups[i].mark_processed(relay, "sess-x"))
    assert await backend.client.smembers("ha:miner:dedup:session:sess-x") == {relay}


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_redis_error_on_check_fails_open_logged_and_counted(
    backend: RedisBackend, caplog: pytest.LogCaptureFixture
) -> None:
    dedup = RedisDeduplicator(backend.broken_client())
    before = _counter("ha_miner_dedup_errors_total", operation="redis_check")
    assert await dedup.is_duplicate(h("relay-1"), "sess-1") is False
    assert _counter("ha_miner_dedup_errors_total", operation="redis_check") == before + 1
    assert any("fail-open" in r.getMessage() for r in caplog.records)


async def test_redis_error_on_mark_propagates_with_cause(backend: RedisBackend) -> None:
    dedup = RedisDeduplicator(backend.broken_client())
    with pytest.raises(RelayMinerError, match="failed to mark processed") as info:
        await dedup.mark_processed(h("relay-1"), "sess-1")
    assert info.value.__cause__ is not None
    with pytest.raises(RelayMinerError, match="failed to mark processed"):
        await dedup.mark_processed_batch([h("relay-1")], "sess-1")
    with pytest.raises(RelayMinerError, match="failed to cleanup"):
        await dedup.cleanup_session("sess-1")


async def test_hits_and_misses_are_counted(dedup: RedisDeduplicator) -> None:
    hits, misses = (
        _counter("ha_miner_dedup_redis_cache_hits_total"),
        _counter("ha_miner_dedup_misses_total"),
    )
    await dedup.is_duplicate(h("x"), "sess-m")
    await dedup.mark_processed(h("x"), "sess-m")
    await dedup.is_duplicate(h("x"), "sess-m")
    assert _counter("ha_miner_dedup_redis_cache_hits_total") == hits + 1
    assert _counter("ha_miner_dedup_misses_total") == misses + 1


async def test_start_is_idempotent(dedup: RedisDeduplicator) -> None:
    await dedup.start()
    await dedup.start()


async def test_close_is_idempotent(dedup: RedisDeduplicator) -> None:
    await dedup.close()
    await dedup.close()


async def test_start_after_close_errors(dedup: RedisDeduplicator) -> None:
    await dedup.close()
    with pytest.raises(ClosedError, match="deduplicator is closed"):
        await dedup.start()


async def test_operations_still_work_after_close(dedup: RedisDeduplicator) -> None:
    # As in Go: close only stops start(); no operation checks it.
    await dedup.close()
    await dedup.mark_processed(h("late"), "sess-1")
    assert await dedup.is_duplicate(h("late"), "sess-1") is True


async def test_empty_config_gets_defaults(backend: RedisBackend) -> None:
    dedup = RedisDeduplicator(backend.client)
    assert dedup.key("sess-1") == "ha:miner:dedup:session:sess-1"
    assert dedup.config.ttl_seconds == 300
    await dedup.mark_processed(h("relay-1"), "sess-1")
    assert await backend.client.ttl("ha:miner:dedup:session:sess-1") == 300


def test_implements_interface(dedup: RedisDeduplicator) -> None:
    assert isinstance(dedup, Deduplicator)


@pytest.mark.parametrize(
    ("relay_hash", "session_id", "error", "match"),
    [
        ("abc", "sess-1", TypeError, "relay_hash must be bytes"),
        (b"", "sess-1", ValueError, "relay_hash must not be empty"),
        (h("x"), "", ValueError, "session_id must not be empty"),
        (h("x"), 7, TypeError, "session_id must be a str"),
    ],
)
async def test_bad_arguments_rejected_before_redis(
    backend: RedisBackend, relay_hash: object, session_id: object, error: type, match: str
) -> None:
    dedup = RedisDeduplicator(backend.broken_client())  # any Redis call would fail differently
    with pytest.raises(error, match=match):
        await dedup.mark_processed(relay_hash, session_id)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        await dedup.is_duplicate(relay_hash, session_id)  # type: ignore[arg-type]


async def test_bad_batch_arguments(backend: RedisBackend) -> None:
    dedup = RedisDeduplicator(backend.broken_client())
    with pytest.raises(TypeError, match="sequence of bytes"):
        await dedup.mark_processed_batch(h("x"), "sess-1")
    with pytest.raises(ValueError, match=r"relay_hashes\[\] must not be empty"):
        await dedup.mark_processed_batch([h("x"), b""], "sess-1")
    with pytest.raises(ValueError, match="session_id must not be empty"):
        await dedup.mark_processed_batch([], "")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ttl_blocks": 0}, "ttl_blocks must be > 0"),
        ({"block_time_seconds": -1}, "block_time_seconds must be > 0"),
        ({"key_prefix": ""}, "key_prefix must not be empty"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeduplicatorConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ttl_blocks must be an int"):
        DeduplicatorConfig(ttl_blocks="10")  # type: ignore[arg-type]
