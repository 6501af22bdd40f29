"""The cluster key layout: every key of a supplier hashes to the slot of the stream the Go
relayers write (``ha:relays:<supplier>``), checked by the server itself (``CLUSTER KEYSLOT``);
the default layout is untouched (golden strings in tests/test_keys.py)."""

from __future__ import annotations

import inspect

import pytest
from redis.asyncio.cluster import RedisCluster

from relayminer.keys import KeyBuilder, Namespace
from relayminer.runtime.connections import connect
from tests.cluster.cluster_support import ClusterGroup

SUPPLIERS = ["pokt1sup1", "pokt1sup2", "pokt1zz9", "pokt1qwertyuiopasdfghjkl"]
SID = "0f3a" * 16

#: every KeyBuilder method that names one key of one supplier, with its arguments
PER_SUPPLIER = {
    "stream_key": lambda s: (s,),
    "dead_letter_stream_key": lambda s: (s,),
    "stream_failures_key": lambda s: (s,),
    "miner_session_key": lambda s: (s, SID),
    "miner_sessions_index_key": lambda s: (s,),
    "miner_session_state_index_key": lambda s: (s, "claimed"),
    "miner_dedup_session_key": lambda s: (SID, s),
    "miner_state_epoch_key": lambda s: (s,),
    "smst_nodes_key": lambda s: (s, SID),
    "smst_root_key": lambda s: (s, SID),
    "smst_stats_key": lambda s: (s, SID),
    "smst_leaves_key": lambda s: (s, SID),
    "smst_live_root_key": lambda s: (s, SID),
    "miner_claim_key": lambda s: (s,),
    "tx_track_key": lambda s: (s, 120, SID),
    "rebroadcast_key": lambda s: ("claim", s, 120),
    "rebroadcast_index_key": lambda s: ("proof", s),
}
#: per-supplier prefixes scripts extend (the state index of a session's old state)
PER_SUPPLIER_PREFIXES = {
    "miner_session_state_index_prefix": "active",
    "miner_supplier_sessions_prefix": SID,
    "smst_supplier_prefix": SID + ":leaves",
}
#: cross-supplier keys, designed one by one (docs/redis-deployments.md)
CROSS_SUPPLIER = {
    "global_leader_key",
    "miner_active_set_key",
    "miner_instance_key",
    "block_event_channel",
    "meter_cleanup_channel",
}
NOT_KEYS = {
    "stream_prefix",
    "consumer_group",
    "cache_prefix",
    "miner_sessions_prefix",
    "miner_dedup_prefix",
    "smst_nodes_prefix",
    "smst_nodes_pattern",
    "smst_session_all_pattern",
    "all_keys_pattern",
    "supplier_tag",
    "supplier_segment",
    "supplier_of_segment",
    "with_prefixes",
    "for_client",
    "cluster",
    "miner_claim_prefix",
}


def test_every_key_method_is_classified() -> None:
    """A new key method must be added to one of the tables above (and so to the slot check)."""
    methods = {
        name for name, _ in inspect.getmembers(KeyBuilder, callable) if not name.startswith("_")
    }
    classified = set(PER_SUPPLIER) | set(PER_SUPPLIER_PREFIXES) | CROSS_SUPPLIER | NOT_KEYS
    assert methods == classified


@pytest.mark.parametrize("namespace", [Namespace(), Namespace(base_prefix="prod")])
async def test_every_supplier_key_hashes_to_the_stream_slot(
    cluster_client: RedisCluster, namespace: Namespace
) -> None:
    kb = KeyBuilder.cluster(namespace)
    for supplier in SUPPLIERS:
        stream = kb.stream_key(supplier)
        assert "{" not in stream  # the Go relayers' key, unmodified
        slot = await cluster_client.cluster_keyslot(stream)
        keys = {name: getattr(kb, name)(*args(supplier)) for name, args in PER_SUPPLIER.items()}
        keys |= {name: getattr(kb, name)(supplier) + x for name, x in PER_SUPPLIER_PREFIXES.items()}
        for name, key in keys.items():
            assert await cluster_client.cluster_keyslot(key) == slot, (name, key)
            assert cluster_client.keyslot(key) == slot  # the client routes it there too
            if name != "stream_key":
                assert kb.supplier_tag(supplier) in key, (name, key)
                assert kb.supplier_of_segment(kb.supplier_segment(supplier)) == supplier


async def test_suppliers_spread_over_the_masters(cluster_client: RedisCluster) -> None:
    """Sharding works: the streams of many suppliers land on every master."""
    kb = KeyBuilder.cluster()
    owners = {cluster_client.get_node_from_key(kb.stream_key(f"pokt1s{i}")).name for i in range(30)}
    assert len(owners) == 3


async def test_replica_registry_shares_one_slot(cluster_client: RedisCluster) -> None:
    kb = KeyBuilder.cluster()
    slot = await cluster_client.cluster_keyslot(kb.miner_active_set_key())
    for instance in ("a", "miner-host-1234"):
        assert await cluster_client.cluster_keyslot(kb.miner_instance_key(instance)) == slot


def test_cluster_layout_needs_the_supplier_where_go_has_none() -> None:
    kb = KeyBuilder.cluster()
    for call in (
        lambda: kb.miner_dedup_session_key(SID),
        lambda: kb.miner_state_epoch_key(),
        lambda: kb.rebroadcast_index_key("claim"),
    ):
        with pytest.raises(ValueError, match="cluster key layout needs the supplier"):
            call()
    # the default layout ignores it: byte-identical to the Go keys
    go = KeyBuilder()
    assert go.miner_dedup_session_key(SID, "s") == f"ha:miner:dedup:session:{SID}"
    assert go.miner_state_epoch_key("s") == "ha:miner:epoch"
    assert go.rebroadcast_index_key("claim", "s") == "ha:miner:rebroadcast:{claim}:index"


def test_segment_parsing() -> None:
    kb = KeyBuilder.cluster()
    assert kb.supplier_of_segment("{ha:relays:pokt1a}") == "pokt1a"
    for bad in ("pokt1a", "{ha:relays:}", "{other:pokt1a}", "{ha:relays:pokt1a"):
        assert kb.supplier_of_segment(bad) is None
    assert KeyBuilder().supplier_of_segment("pokt1a") == "pokt1a"
    assert KeyBuilder().supplier_of_segment("") is None
    custom = kb.with_prefixes(sessions_prefix="p:sess")
    assert custom.hash_tagged
    assert custom.miner_session_key("s", "x") == "p:sess:{ha:relays:s}:x"


async def test_layout_follows_the_client(redis_cluster: ClusterGroup) -> None:
    client = connect(redis_cluster.url)
    try:
        assert isinstance(client, RedisCluster)
        assert KeyBuilder.for_client(client).hash_tagged
        assert await client.ping()
    finally:
        await client.aclose()
    single = connect("redis://127.0.0.1:1/0")
    try:
        assert not KeyBuilder.for_client(single).hash_tagged
    finally:
        await single.aclose()


async def test_supplier_discovery_scans_every_master(cluster_client: RedisCluster) -> None:
    from relayminer.inspection import find_suppliers

    kb = KeyBuilder.cluster()
    sups = [f"pokt1scan{i}" for i in range(12)]
    for sup in sups:
        await cluster_client.sadd(kb.miner_sessions_index_key(sup), "sess")
    owners = {cluster_client.get_node_from_key(kb.stream_key(s)).name for s in sups}
    assert len(owners) == 3  # the index keys live on every master
    assert await find_suppliers(cluster_client) == sorted(sups)  # type: ignore[arg-type]
