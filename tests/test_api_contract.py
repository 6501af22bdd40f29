"""The public contract of ../shared/API.md: names importable from ``relayminer`` with these
signatures (acceptance tests outside this repository import exactly these)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

import relayminer as rm


def params(obj: Any) -> list[tuple[str, Any]]:
    sig = inspect.signature(obj)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


E = inspect.Parameter.empty


def test_keys() -> None:
    assert [f.name for f in dataclasses.fields(rm.Namespace)] == [
        "base_prefix",
        "cache_prefix",
        "events_prefix",
        "streams_prefix",
        "miner_prefix",
        "supplier_prefix",
        "meter_prefix",
        "params_prefix",
        "consumer_group_prefix",
    ]
    assert rm.Namespace() == rm.Namespace(
        "ha", "cache", "events", "relays", "miner", "supplier", "meter", "params", "miners"
    )
    assert params(rm.KeyBuilder) == [("namespace", None)]
    kb = rm.KeyBuilder()
    for name in (
        "miner_session_key",
        "miner_sessions_index_key",
        "miner_session_state_index_key",
        "miner_dedup_session_key",
        "smst_nodes_key",
        "stream_key",
        "consumer_group",
    ):
        assert callable(getattr(kb, name))


def test_deduplicator() -> None:
    assert params(rm.DeduplicatorConfig) == [
        ("key_prefix", "ha:miner:dedup"),
        ("ttl_blocks", 10),
        ("block_time_seconds", 30),
    ]
    assert rm.DeduplicatorConfig().ttl_seconds == 300
    assert params(rm.RedisDeduplicator) == [("redis", E), ("config", None)]
    for name, args in [
        ("is_duplicate", ["relay_hash", "session_id"]),
        ("mark_processed", ["relay_hash", "session_id"]),
        ("mark_processed_batch", ["relay_hashes", "session_id"]),
        ("cleanup_session", ["session_id"]),
        ("start", []),
        ("close", []),
    ]:
        method = getattr(rm.RedisDeduplicator, name)
        assert inspect.iscoroutinefunction(method)
        assert [p for p, _ in params(method)] == args
    assert issubclass(rm.RedisDeduplicator, rm.Deduplicator)


def test_sessions() -> None:
    assert issubclass(rm.SessionState, str)
    assert [s.value for s in rm.SessionState] == [
        "active",
        "claiming",
        "claimed",
        "proving",
        "proved",
        "probabilistic_proved",
        "claim_window_closed",
        "claim_tx_error",
        "claim_missing",
        "claim_skipped",
        "proof_window_closed",
        "proof_tx_error",
    ]
    s = rm.SessionState.CLAIM_SKIPPED
    assert (s.is_terminal, s.is_success, s.is_failure) == (True, False, False)
    assert [(f.name, f.default) for f in dataclasses.fields(rm.SessionSnapshot)] == [
        ("session_id", dataclasses.MISSING),
        ("supplier_operator_address", dataclasses.MISSING),
        ("service_id", dataclasses.MISSING),
        ("application_address", dataclasses.MISSING),
        ("session_start_height", dataclasses.MISSING),
        ("session_end_height", dataclasses.MISSING),
        ("state", dataclasses.MISSING),
        ("relay_count", 0),
        ("total_compute_units", 0),
        ("claimed_root_hash", None),
        ("claim_tx_hash", ""),
        ("proof_tx_hash", ""),
        ("last_wal_entry_id", ""),
        ("created_at", None),
        ("last_updated_at", None),
        ("settlement_outcome", None),
        ("settlement_height", None),
        ("settlement_tx_hash", None),
    ]
    assert params(rm.SessionStoreConfig) == [
        ("supplier_address", E),
        ("key_prefix", "ha:miner:sessions"),
        ("session_ttl_seconds", 7200),
    ]
    assert params(rm.RedisSessionStore) == [("redis", E), ("config", E), ("fence", None)]
    store_methods = {
        "save": ["snapshot"],
        "create_if_absent": ["snapshot"],
        "get": ["session_id"],
        "get_by_supplier": [],
        "get_by_state": ["state"],
        "delete": ["session_id"],
        "update_state": ["session_id", "new_state"],
        "update_settlement_metadata": ["session_id", "outcome", "height"],
        "update_wal_position": ["session_id", "wal_entry_id"],
        "increment_relay_count": ["session_id", "compute_units"],
        "close": [],
    }
    for name, args in store_methods.items():
        method = getattr(rm.RedisSessionStore, name)
        assert inspect.iscoroutinefunction(method), name
        assert [p for p, _ in params(method)] == args, name
    assert issubclass(rm.RedisSessionStore, rm.SessionStore)
    assert params(rm.SessionCoordinator) == [("store", E), ("supplier_address", E)]
    assert [p for p, _ in params(rm.SessionCoordinator.on_relay_processed)] == [
        "session_id",
        "compute_units",
        "supplier_address",
        "service_id",
        "application_address",
        "session_start_height",
        "session_end_height",
    ]
    assert [p for p, _ in params(rm.SessionCoordinator.on_session_created)] == [
        "session_id",
        "supplier_address",
        "service_id",
        "application_address",
        "start_height",
        "end_height",
    ]
    for name in (
        "on_session_proved",
        "on_claim_window_closed",
        "on_claim_tx_error",
        "on_claim_missing",
        "on_proof_window_closed",
        "on_proof_tx_error",
        "on_probabilistic_proved",
        "on_claim_skipped",
    ):
        assert [p for p, _ in params(getattr(rm.SessionCoordinator, name))] == ["session_id"]
    assert callable(rm.SessionCoordinator.set_on_session_created_callback)
    assert callable(rm.SessionCoordinator.set_on_session_terminal_callback)


def test_errors() -> None:
    for cls in (rm.SessionNotFoundError, rm.SessionTerminalError, rm.ClosedError):
        assert issubclass(cls, rm.RelayMinerError)


def test_relay_transport_and_worker() -> None:
    m = rm.MinedRelayMessage(session_id="s", session_end_height=1)
    assert m.DESCRIPTOR.full_name == "pocket.ha.MinedRelayMessage"
    assert params(rm.WorkerConfig)[:6] == [
        ("batch_size", 500),
        ("block_ms", 1000),
        ("claim_idle_ms", 30000),
        ("max_retries", 3),
        ("consumer_name", None),
        ("namespace", None),
    ]
    assert params(rm.RelayWorker)[:3] == [("redis", E), ("supplier_address", E), ("config", None)]
    assert [p for p, _ in params(rm.RelayWorker.run)] == ["stop"]
    assert params(rm.RelayWorker.run) == [("stop", None)]
    assert params(rm.RelayWorker.drain) == []


def test_smst() -> None:
    assert isinstance(rm.MemoryMapStore(), rm.MapStore)
    trie = rm.SparseMerkleSumTrie()
    assert params(rm.SparseMerkleSumTrie) == [("store", None)]
    assert trie.root() == bytes(48) and (trie.count(), trie.sum()) == (0, 0)
    for name in ("update", "delete", "commit", "prove_closest"):
        assert callable(getattr(trie, name))
    proof = trie.prove_closest(bytes(32))
    assert isinstance(proof, rm.ClosestProof)
    compact = proof.compact()
    assert isinstance(compact, rm.CompactClosestProof) and len(compact.to_bytes()) == 383
    assert rm.verify_closest_proof(proof, trie.root())
    assert rm.verify_compact_closest_proof(compact, trie.root())
    assert len(rm.proof_path(bytes(32), "session")) == 32


@pytest.mark.parametrize(
    "name",
    [
        "session_start_height",
        "session_end_height",
        "session_number",
        "claim_window_open_height",
        "claim_window_close_height",
        "proof_window_open_height",
        "proof_window_close_height",
        "settlement_height",
    ],
)
def test_protocol_maths(name: str) -> None:
    assert [p for p, _ in params(getattr(rm, name))] == ["p", "h"]


def test_shared_params_and_gorand() -> None:
    assert params(rm.SharedParams) == [
        ("num_blocks_per_session", 10),
        ("grace_period_end_offset_blocks", 1),
        ("claim_window_open_offset_blocks", 1),
        ("claim_window_close_offset_blocks", 4),
        ("proof_window_open_offset_blocks", 0),
        ("proof_window_close_offset_blocks", 4),
        ("compute_units_to_tokens_multiplier", 42_000_000),
        ("compute_unit_cost_granularity", 1_000_000),
        ("session_grid_anchor_height", 1),
        ("session_number_at_anchor", 1),
    ]
    assert dataclasses.fields(rm.SharedParams) and rm.SharedParams.__dataclass_params__.frozen  # type: ignore[attr-defined]
    r = rm.GoRand(1)
    assert r.int63() == 5577006791947779410
    assert 0 <= r.float64() < 1
