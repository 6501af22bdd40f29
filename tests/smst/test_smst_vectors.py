"""Every vector of shared/vectors/smst_vectors.json (produced by Go smt v0.14.1)."""

from __future__ import annotations

from typing import Any

import pytest

from relayminer.errors import RelayMinerError
from relayminer.smst.nodes import (
    PLACEHOLDER,
    ParsedExtension,
    ParsedInner,
    ParsedLeaf,
    calc_root,
    parse_node,
)
from relayminer.smst.proof import (
    ClosestProof,
    CompactClosestProof,
    proof_path,
    verify_closest_proof,
    verify_compact_closest_proof,
)
from relayminer.smst.trie import SMSTKeyNotFoundError, SparseMerkleSumTrie

from .support import (
    SHARED_VECTORS,
    VECTORS_PATH,
    VECTORS_SHA256,
    build,
    h,
    leaves_of,
    node_kind,
    reachable,
    sha,
    store_dict,
    store_digest,
)
from .support import vectors as V

SEQUENCES = sorted(V()["sequences"])


def test_vectors_file_is_the_go_output() -> None:
    data = VECTORS_PATH.read_bytes()
    assert sha(data).hex() == VECTORS_SHA256
    if SHARED_VECTORS.exists():  # the workspace copy, when the repository sits next to it
        assert SHARED_VECTORS.read_bytes() == data
    meta = V()["_meta"]
    assert meta["library_version"] == "v0.14.1"
    assert meta["library_commit"] == "2788cabaaa4912639379cd2198907884b3612128"


def _opt(hex_or_none: str | None) -> bytes | None:
    return None if hex_or_none is None else h(hex_or_none)


def run_step(trie: SparseMerkleSumTrie, step: dict[str, Any]) -> str | None:
    key = h(step["key_hex"])
    assert sha(key).hex() == step["path_hex"]
    try:
        if step["op"] == "update":
            trie.update(key, h(step["value_hex"]), step["weight"])
        else:
            assert step["op"] == "delete"
            trie.delete(key)
    except SMSTKeyNotFoundError:
        return "key not found"
    finally:
        trie.commit()
    return None


def triples_of(steps: list[dict[str, Any]]) -> list[tuple[bytes, bytes, int]]:
    return [(h(s["key_hex"]), h(s["value_hex"]), s["weight"]) for s in steps]


# --- sequences ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_roots_and_stores(name: str) -> None:
    trie = SparseMerkleSumTrie()
    live: dict[bytes, tuple[bytes, int]] = {}
    for i, step in enumerate(V()["sequences"][name]):
        error = run_step(trie, step)
        assert error == step.get("error"), f"step {i}"
        key = h(step["key_hex"])
        if step["op"] == "update":
            live[key] = (h(step["value_hex"]), step["weight"])
        elif error is None:
            del live[key]
        assert trie.root().hex() == step["root_hex"], f"step {i}"
        assert trie.sum() == step["sum"]
        assert trie.count() == step["count"]
        assert len(trie.store) == step["store_entry_count"]
        assert store_digest(trie.store) == step["store_digest_hex"]
        if "store_after_commit" in step:
            expected = {h(e["field_hex"]): h(e["value_hex"]) for e in step["store_after_commit"]}
            assert store_dict(trie.store) == expected, f"step {i}"
            for entry in step["store_after_commit"]:
                assert node_kind(h(entry["value_hex"])) == entry["kind"]
                parse_node(h(entry["value_hex"]), h(entry["field_hex"]))  # parses and matches
        # The root is the canonical §5 root of the live leaves, whatever the shape.
        assert calc_root(leaves_of((k, v, w) for k, (v, w) in live.items())) == trie.root()
        # Get sees exactly the live leaves.
        for k, (v, w) in live.items():
            assert trie.get(k) == (v, w)


def test_sequence_error_step_leaves_trie_unchanged() -> None:
    steps = V()["sequences"]["seq_small_overwrite_delete"]
    trie = SparseMerkleSumTrie()
    for step in steps[:8]:
        run_step(trie, step)
    before = (trie.root(), store_dict(trie.store))
    bad = steps[8]
    assert bad.get("error") == "key not found"
    with pytest.raises(SMSTKeyNotFoundError) as info:
        trie.delete(h(bad["key_hex"]))
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, RelayMinerError)
    assert not trie.has_uncommitted_changes
    trie.commit()
    assert (trie.root(), store_dict(trie.store)) == before


def test_idempotent_reinsert_keeps_root_and_store() -> None:
    steps = V()["sequences"]["seq_small_overwrite_delete"]
    assert steps[6]["op"] == "update"
    assert steps[6]["key_hex"] == steps[2]["key_hex"]
    assert steps[6]["value_hex"] == steps[2]["value_hex"]
    trie = SparseMerkleSumTrie()
    for step in steps[:6]:
        run_step(trie, step)
    before = store_dict(trie.store)
    run_step(trie, steps[6])
    assert store_dict(trie.store) == before


def test_order_a_and_b_differ_only_in_extension_paths() -> None:
    a = build(triples_of(V()["sequences"]["seq_order_A"]))
    b = build(triples_of(V()["sequences"]["seq_order_B_reverse"]))
    assert a.root() == b.root()
    sa, sb = store_dict(a.store), store_dict(b.store)
    assert sa.keys() == sb.keys()
    differing = [k for k in sa if sa[k] != sb[k]]
    assert len(differing) == 2
    for k in differing:
        assert sa[k][0] == 2 == sb[k][0]
        assert sa[k][:3] == sb[k][:3] and sa[k][35:] == sb[k][35:]  # only the path differs
        assert sa[k][3:35] != sb[k][3:35]


def test_sum_overflow_wraps() -> None:
    steps = V()["sequences"]["seq_sum_overflow"]
    trie = build(triples_of(steps))
    assert trie.sum() == (2**64 - 1 + 2) % 2**64 == 1
    assert trie.root().hex() == steps[-1]["root_hex"]


def test_fresh_build_equals_sequence_after_deletes() -> None:
    check = V()["check_seq1_step8_equals_fresh_build"]
    steps = V()["sequences"]["seq_small_overwrite_delete"]
    trie = SparseMerkleSumTrie()
    for step in steps[:9]:
        run_step(trie, step)
    assert trie.root().hex() == check["seq_root_hex"]
    live = {}
    for step in steps[:9]:
        if step["op"] == "update":
            live[h(step["key_hex"])] = (h(step["value_hex"]), step["weight"])
        elif step.get("error") is None:
            live.pop(h(step["key_hex"]))
    fresh = build((k, v, w) for k, (v, w) in live.items())
    assert fresh.root().hex() == check["fresh_root_hex"]
    assert (
        calc_root(leaves_of((k, v, w) for k, (v, w) in live.items())).hex()
        == (check["fresh_root_hex"])
    )


# --- large trees ----------------------------------------------------------------------------


def large_triples() -> list[tuple[bytes, bytes, int]]:
    return [(sha(f"relay-{i}".encode()), f"value-{i}".encode(), i % 7 + 1) for i in range(1000)]


@pytest.fixture(scope="module")
def large_tree() -> SparseMerkleSumTrie:
    triples = large_triples()
    checkpoints = {c["leaves"]: c for c in V()["large_tree"]["checkpoints"]}
    trie = SparseMerkleSumTrie()
    seen = 0
    for i, (k, v, w) in enumerate(triples, 1):
        trie.update(k, v, w)
        trie.commit()
        if i in checkpoints:
            c = checkpoints[i]
            assert trie.root().hex() == c["root_hex"]
            assert (trie.sum(), trie.count()) == (c["sum"], c["count"])
            assert len(trie.store) == c["store_entry_count"]
            assert store_digest(trie.store) == c["store_digest_hex"]
            seen += 1
    assert seen == len(checkpoints) == 7
    return trie


@pytest.fixture(scope="module")
def large_tree_reverse() -> SparseMerkleSumTrie:
    return build(reversed(large_triples()))


def test_large_tree_checkpoints_and_final_root(large_tree: SparseMerkleSumTrie) -> None:
    lt = V()["large_tree"]
    assert large_tree.root().hex() == lt["final_root_hex"]
    assert large_tree.sum() == lt["final_sum"] == lt["expected_sum_check"]
    assert large_tree.count() == lt["final_count"]
    assert calc_root(leaves_of(large_triples())).hex() == lt["final_root_hex"]
    assert reachable(store_dict(large_tree.store), large_tree.root()) == set(
        store_dict(large_tree.store)
    )


def test_large_tree_reverse_order(
    large_tree: SparseMerkleSumTrie, large_tree_reverse: SparseMerkleSumTrie
) -> None:
    rv = V()["large_tree_reverse_order"]
    assert (
        large_tree_reverse.root().hex()
        == rv["final_root_hex"]
        == V()["large_tree"]["final_root_hex"]
    )
    assert len(large_tree_reverse.store) == rv["store_entry_count"]
    assert store_digest(large_tree_reverse.store) == rv["store_digest_hex"]
    assert store_digest(large_tree_reverse.store) != store_digest(large_tree.store)
    assert set(store_dict(large_tree_reverse.store)) == set(store_dict(large_tree.store))


# --- proofs ---------------------------------------------------------------------------------


def check_proof_vector(trie: SparseMerkleSumTrie, root: bytes, pv: dict[str, Any]) -> None:
    proof = trie.prove_closest(h(pv["path_hex"]))
    fp = pv["full_proof"]
    assert proof.path == h(fp["Path"]) == h(pv["path_hex"])
    assert list(proof.flipped_bits) == fp["FlippedBits"]
    assert proof.depth == fp["Depth"]
    assert proof.closest_path == h(fp["ClosestPath"])
    assert proof.closest_value_hash == _opt(fp["ClosestValueHash"])
    inner = fp["ClosestProof"]
    assert [s.hex() for s in proof.closest_proof.side_nodes] == inner["SideNodes"]
    assert proof.closest_proof.non_membership_leaf_data == _opt(inner["NonMembershipLeafData"])
    assert proof.closest_proof.sibling_data == _opt(inner["SiblingData"])
    assert node_kind(proof.closest_proof.sibling_data) == pv["sibling_data_kind"]

    compact = proof.compact()
    cp = pv["compact_proof"]
    assert compact.path == h(cp["Path"])
    assert [b.hex() for b in compact.flipped_bits] == cp["FlippedBits"]
    assert compact.depth.hex() == cp["Depth"]
    assert compact.closest_path == h(cp["ClosestPath"])
    assert compact.closest_value_hash == _opt(cp["ClosestValueHash"])
    ci = cp["ClosestProof"]
    assert [s.hex() for s in compact.closest_proof.side_nodes] == ci["SideNodes"]
    assert compact.closest_proof.bit_mask.hex() == ci["BitMask"]
    assert compact.closest_proof.num_side_nodes == ci["NumSideNodes"]
    assert compact.closest_proof.sibling_data == _opt(ci["SiblingData"])
    assert compact.closest_proof.non_membership_leaf_data == _opt(ci["NonMembershipLeafData"])

    blob = compact.to_bytes()
    assert blob.hex() == pv["compact_proof_gob_hex"]
    assert len(blob) == pv["compact_proof_gob_len"]

    assert verify_closest_proof(proof, root) is pv["verify_closest_proof"]
    assert verify_compact_closest_proof(compact, root) is pv["verify_compact_closest_proof"]
    decoded = CompactClosestProof.from_bytes(h(pv["compact_proof_gob_hex"]))
    assert decoded == compact
    assert decoded.to_bytes() == blob
    full_again = decoded.decompact()
    assert full_again == proof
    assert verify_closest_proof(full_again, root) is pv["gob_roundtrip_decompact_verify"]
    assert full_again.closest_value.hex() == pv["closest_leaf_value_hex_via_GetValueHash"]


def test_empty_tree() -> None:
    et = V()["empty_tree"]
    trie = SparseMerkleSumTrie()
    assert trie.root().hex() == et["root_hex"] == PLACEHOLDER.hex()
    assert (trie.sum(), trie.count()) == (et["sum"], et["count"]) == (0, 0)
    check_proof_vector(trie, trie.root(), et["closest_proof"])
    # The same from an imported empty root.
    imported = SparseMerkleSumTrie.import_root(trie.store, PLACEHOLDER)
    check_proof_vector(imported, PLACEHOLDER, et["closest_proof"])


SMALL_TREES = {
    "one_leaf_a": ("seq_small_overwrite_delete", 1),
    "two_leaves_a_b": ("seq_small_overwrite_delete", 2),
    "order_A_8_leaves": ("seq_order_A", 8),
    "order_B_8_leaves": ("seq_order_B_reverse", 8),
}


def small_tree_cases() -> list[tuple[str, int]]:
    return [
        (name, i)
        for name in sorted(SMALL_TREES)
        for i in range(len(V()["small_tree_proofs"][name]["proofs"]))
    ]


@pytest.mark.parametrize(("tree", "index"), small_tree_cases())
def test_small_tree_proofs(tree: str, index: int) -> None:
    seq, n = SMALL_TREES[tree]
    case = V()["small_tree_proofs"][tree]
    trie = build(triples_of(V()["sequences"][seq][:n]))
    assert trie.root().hex() == case["root_hex"]
    check_proof_vector(trie, trie.root(), case["proofs"][index])


@pytest.mark.parametrize("index", range(12))
def test_large_tree_proofs(large_tree: SparseMerkleSumTrie, index: int) -> None:
    proofs = V()["large_tree"]["proofs"]
    assert len(proofs) == 12
    check_proof_vector(large_tree, large_tree.root(), proofs[index])


@pytest.mark.parametrize("index", range(3))
def test_large_tree_reverse_proofs(large_tree_reverse: SparseMerkleSumTrie, index: int) -> None:
    proofs = V()["large_tree_reverse_order"]["proofs"]
    assert len(proofs) == 3
    check_proof_vector(large_tree_reverse, large_tree_reverse.root(), proofs[index])


def test_reverse_order_extension_siblings_differ_in_bytes_only() -> None:
    forward = {p["path_desc"]: p for p in V()["large_tree"]["proofs"]}
    for p in V()["large_tree_reverse_order"]["proofs"]:
        f = forward[p["path_desc"]]
        same = p["compact_proof_gob_hex"] == f["compact_proof_gob_hex"]
        assert same is (p["sibling_data_kind"] != "extension")
        assert p["verify_closest_proof"] and f["verify_closest_proof"]


def test_large_tree_negative(large_tree: SparseMerkleSumTrie) -> None:
    neg = V()["large_tree"]["negative"]
    path = sha(b"path-0")
    assert neg["proof_for"] == 'sha256("path-0") on final 1000-leaf tree'
    proof = large_tree.prove_closest(path)
    assert verify_closest_proof(proof, large_tree.root())
    for key in ("root_with_bit0_of_hash_flipped_hex", "root_with_sum_byte_flipped_hex"):
        bad_root = h(neg[key])
        assert verify_closest_proof(proof, bad_root) is False
        assert verify_compact_closest_proof(proof.compact(), bad_root) is False
    assert neg["verify_result"] is False and neg["verify_result_sum_tamper"] is False


@pytest.mark.parametrize("index", range(2))
def test_quirk_empty_value_zero_weight(index: int) -> None:
    case = V()["quirk_empty_value_zero_weight"]
    assert case["tree"].startswith('Update(sha256("q1"), "", 0)')
    trie = build([(sha(b"q1"), b"", 0), (sha(b"q2"), b"value-q2", 3)])
    assert trie.root().hex() == case["root_hex"]
    check_proof_vector(trie, trie.root(), case["proofs"][index])


def test_proof_path_examples() -> None:
    examples = V()["proof_path_examples"]
    assert examples
    for ex in examples:
        block_hash = h(ex["block_hash_hex"])
        assert block_hash == sha(b"block-1")
        assert proof_path(block_hash, ex["session_id"]).hex() == ex["path_hex"]


def test_store_entry_kinds_parse() -> None:
    kinds = {"leaf": ParsedLeaf, "inner": ParsedInner, "extension": ParsedExtension}
    for steps in V()["sequences"].values():
        for step in steps:
            for entry in step.get("store_after_commit", []):
                parsed = parse_node(h(entry["value_hex"]), h(entry["field_hex"]))
                assert isinstance(parsed, kinds[entry["kind"]])


def test_closest_proof_is_a_full_proof_object() -> None:
    trie = build([(sha(b"a"), b"value-a", 1)])
    proof = trie.prove_closest(sha(b"path-0"))
    assert isinstance(proof, ClosestProof)
    assert proof.closest_value == b"value-a" and proof.closest_weight == 1
