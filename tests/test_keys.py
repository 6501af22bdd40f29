"""Golden key strings: a wire contract with the Go relayers and miners (spec §1.2)."""

from __future__ import annotations

import dataclasses

import pytest

from relayminer import KeyBuilder, Namespace

GOLDEN = {
    "miner_session_key": (("sup1", "sess1"), "ha:miner:sessions:sup1:sess1"),
    "miner_sessions_index_key": (("sup1",), "ha:miner:sessions:sup1:index"),
    "miner_session_state_index_key": (("sup1", "proved"), "ha:miner:sessions:sup1:state:proved"),
    "miner_dedup_session_key": (("sess1",), "ha:miner:dedup:session:sess1"),
    "smst_nodes_key": (("sup1", "sess1"), "ha:smst:sup1:sess1:nodes"),
    "smst_root_key": (("sup1", "sess1"), "ha:smst:sup1:sess1:root"),
    "smst_stats_key": (("sup1", "sess1"), "ha:smst:sup1:sess1:stats"),
    "smst_live_root_key": (("sup1", "sess1"), "ha:smst:sup1:sess1:live_root"),
    "smst_nodes_pattern": ((), "ha:smst:*:*:nodes"),
    "smst_nodes_prefix": ((), "ha:smst:"),
    "smst_session_all_pattern": (("sup1", "sess1"), "ha:smst:sup1:sess1:*"),
    "stream_key": (("pokt1abc",), "ha:relays:pokt1abc"),
    "stream_prefix": ((), "ha:relays"),
    "consumer_group": ((), "ha-miners"),
    "cache_prefix": ((), "ha:cache"),
    "miner_sessions_prefix": ((), "ha:miner:sessions"),
    "miner_dedup_prefix": ((), "ha:miner:dedup"),
    "global_leader_key": ((), "ha:miner:global_leader"),
    "miner_claim_key": (("sup1",), "ha:miner:claim:sup1"),
    "miner_active_set_key": ((), "ha:miner:active"),
    "miner_instance_key": (("inst1",), "ha:miner:instance:inst1"),
    "block_event_channel": ((), "ha:events:blocks"),
    "meter_cleanup_channel": ((), "ha:meter:cleanup"),
    "tx_track_key": (("sup1", 100, "sess1"), "ha:tx:track:sup1:100:sess1"),
    "rebroadcast_key": (("claim", "sup1", 100), "ha:miner:rebroadcast:{claim}:sup1:100"),
    "rebroadcast_index_key": (("claim",), "ha:miner:rebroadcast:{claim}:index"),
    "all_keys_pattern": ((), "ha:*"),
    "dead_letter_stream_key": (("sup1",), "ha:relays:sup1:dead"),
}


@pytest.mark.parametrize("method", sorted(GOLDEN))
def test_default_golden_strings(method: str) -> None:
    args, expected = GOLDEN[method]
    assert getattr(KeyBuilder(), method)(*args) == expected


def test_namespace_defaults_field_by_field() -> None:
    ns = Namespace(base_prefix="prod", streams_prefix="", consumer_group_prefix="")
    assert ns.streams_prefix == "relays" and ns.consumer_group_prefix == "miners"
    kb = KeyBuilder(ns)
    assert kb.stream_key("s") == "prod:relays:s"
    assert kb.consumer_group() == "prod-miners"
    assert kb.miner_session_key("a", "b") == "prod:miner:sessions:a:b"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Namespace)])
def test_no_empty_segment_under_partial_namespaces(field: str) -> None:
    kb = KeyBuilder(Namespace(**{field: ""}))
    for method, (args, _) in GOLDEN.items():
        key = getattr(kb, method)(*args)
        assert "::" not in key and not key.startswith(":"), (field, method, key)
    assert kb.ns == Namespace()


def test_fully_specified_namespace_is_unchanged() -> None:
    values = {f.name: f"x{i}" for i, f in enumerate(dataclasses.fields(Namespace))}
    ns = Namespace(**values)
    assert dataclasses.asdict(ns) == values
    kb = KeyBuilder(ns)
    assert kb.miner_dedup_session_key("s") == "x0:x4:dedup:session:s"
    assert kb.consumer_group() == "x0-x8"
    assert kb.block_event_channel() == "x0:x2:blocks"


def test_namespace_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match=r"Namespace\.base_prefix must be a str"):
        Namespace(base_prefix=None)  # type: ignore[arg-type]


def test_prefix_methods_and_keys_not_in_go() -> None:
    kb = KeyBuilder()
    assert kb.miner_supplier_sessions_prefix("s") == "ha:miner:sessions:s:"
    assert kb.miner_session_state_index_prefix("s") == "ha:miner:sessions:s:state:"
    assert kb.smst_supplier_prefix("s") == "ha:smst:s:"
    assert kb.smst_nodes_key("s", "x").startswith(kb.smst_supplier_prefix("s"))
    assert kb.stream_failures_key("s") == "ha:relays:s:failures"
    assert kb.miner_state_epoch_key() == "ha:miner:epoch"
    custom = kb.with_prefixes(sessions_prefix="p:sess", dedup_prefix="p:dd")
    assert custom.miner_session_key("s", "x") == "p:sess:s:x"
    assert custom.miner_dedup_session_key("x") == "p:dd:session:x"
    assert custom.stream_key("s") == kb.stream_key("s")
