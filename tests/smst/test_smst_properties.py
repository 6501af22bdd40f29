"""Properties of the trie against independent oracles (hypothesis, deterministic settings)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayminer.smst.mapstore import MemoryMapStore
from relayminer.smst.nodes import (
    PLACEHOLDER,
    calc_root,
    extension_digest,
    inner_digest,
    leaf_payload,
)
from relayminer.smst.proof import (
    ClosestProof,
    CompactClosestProof,
    MerkleProof,
    verify_closest_proof,
    verify_compact_closest_proof,
)
from relayminer.smst.trie import (
    SMSTKeyNotFoundError,
    SMSTUnsupportedShapeError,
    SparseMerkleSumTrie,
)

from .support import build, leaves_of, reachable, sha, store_dict

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

keys = st.binary(min_size=32, max_size=32)
values = st.binary(max_size=24)
weights = st.integers(min_value=0, max_value=2**64 - 1)
small_weights = st.integers(min_value=0, max_value=1000)
leaf_maps = st.dictionaries(keys, st.tuples(values, small_weights), max_size=40)
nonempty_leaf_maps = st.dictionaries(
    keys, st.tuples(st.binary(min_size=1, max_size=24), small_weights), min_size=1, max_size=40
)
paths = st.binary(min_size=32, max_size=32)

# An operation: (kind, key index, value, weight); deletes pick an existing key when possible.
ops = st.lists(
    st.tuples(
        st.sampled_from(["update", "update", "update", "delete", "delete_absent"]),
        st.integers(min_value=0, max_value=15),
        values,
        small_weights,
    ),
    max_size=60,
)


def triples(leaves: dict[bytes, tuple[bytes, int]]) -> list[tuple[bytes, bytes, int]]:
    return [(k, v, w) for k, (v, w) in leaves.items()]


def apply_ops(
    trie: SparseMerkleSumTrie,
    operations: list[tuple[str, int, bytes, int]],
    commit_every: int,
) -> dict[bytes, tuple[bytes, int]]:
    """Run ``operations`` on ``trie``; returns the live (key -> (value, weight)) map."""
    pool = [sha(bytes([i])) for i in range(16)]
    live: dict[bytes, tuple[bytes, int]] = {}
    for n, (kind, i, value, weight) in enumerate(operations, 1):
        key = pool[i]
        if kind == "update":
            trie.update(key, value, weight)
            live[key] = (value, weight)
        elif kind == "delete" and key in live:
            trie.delete(key)
            del live[key]
        else:
            absent = sha(b"absent" + bytes([i]))
            try:
                trie.delete(absent)
            except SMSTKeyNotFoundError:
                pass
            else:
                raise AssertionError("deleting an absent key must fail")
        if commit_every and n % commit_every == 0:
            trie.commit()
    return live


@SETTINGS
@given(leaves=leaf_maps, commit_every=st.integers(min_value=0, max_value=7))
def test_root_is_the_canonical_root(
    leaves: dict[bytes, tuple[bytes, int]], commit_every: int
) -> None:
    trie = build(triples(leaves), commit_every=commit_every)
    assert trie.root() == calc_root(leaves_of(triples(leaves)))
    assert trie.count() == len(leaves)
    assert trie.sum() == sum(w for _, w in leaves.values()) % 2**64
    for key, (value, weight) in leaves.items():
        assert trie.get(key) == (value, weight)


@SETTINGS
@given(leaves=leaf_maps, seed=st.integers(min_value=0, max_value=2**32))
def test_insertion_order_changes_no_digest(
    leaves: dict[bytes, tuple[bytes, int]], seed: int
) -> None:
    items = triples(leaves)
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    a, b = build(items), build(shuffled)
    assert a.root() == b.root()
    sa, sb = store_dict(a.store), store_dict(b.store)
    assert sa.keys() == sb.keys()
    for digest, pre in sa.items():
        other = sb[digest]
        if pre != other:  # only the path field of an extension may differ (§6.2)
            assert pre[0] == other[0] == 2
            assert pre[:3] == other[:3] and pre[35:] == other[35:]


@SETTINGS
@given(operations=ops, commit_every=st.integers(min_value=1, max_value=9))
def test_store_holds_exactly_the_current_nodes(
    operations: list[tuple[str, int, bytes, int]], commit_every: int
) -> None:
    trie = SparseMerkleSumTrie()
    live = apply_ops(trie, operations, commit_every)
    trie.commit()
    assert not trie.has_uncommitted_changes
    stored = store_dict(trie.store)
    assert reachable(stored, trie.root()) == set(stored)
    assert trie.root() == calc_root(leaves_of(triples(live)))


@SETTINGS
@given(operations=ops, commit_every=st.integers(min_value=1, max_value=9))
def test_interleaved_commits_give_the_same_store(
    operations: list[tuple[str, int, bytes, int]], commit_every: int
) -> None:
    once = SparseMerkleSumTrie()
    apply_ops(once, operations, 0)
    once.commit()
    often = SparseMerkleSumTrie()
    apply_ops(often, operations, commit_every)
    often.commit()
    assert store_dict(once.store) == store_dict(often.store)
    assert once.root() == often.root()


@SETTINGS
@given(
    leaves=leaf_maps,
    probe=st.lists(paths, min_size=1, max_size=4),
    more=st.lists(st.tuples(keys, values, small_weights), max_size=6),
)
def test_reimported_trie_is_the_same_trie(
    leaves: dict[bytes, tuple[bytes, int]],
    probe: list[bytes],
    more: list[tuple[bytes, bytes, int]],
) -> None:
    trie = build(triples(leaves), commit_every=5)
    copy = MemoryMapStore(trie.store.items())
    again = SparseMerkleSumTrie.import_root(copy, trie.root())
    assert again.root() == trie.root()
    assert (again.sum(), again.count()) == (trie.sum(), trie.count())
    for path in probe:
        p1, p2 = trie.prove_closest(path), again.prove_closest(path)
        assert p1 == p2
        assert p1.compact().to_bytes() == p2.compact().to_bytes()
    # Mutating the lazily loaded trie writes the same store as mutating the original.
    for key, value, weight in more:
        trie.update(key, value, weight)
        again.update(key, value, weight)
    trie.commit()
    again.commit()
    assert again.root() == trie.root()
    assert store_dict(copy) == store_dict(trie.store)


@SETTINGS
@given(operations=ops)
def test_reimported_trie_after_deletes_matches(
    operations: list[tuple[str, int, bytes, int]],
) -> None:
    half = len(operations) // 2
    trie = SparseMerkleSumTrie()
    apply_ops(trie, operations[:half], 1)
    copy = MemoryMapStore(trie.store.items())
    again = SparseMerkleSumTrie.import_root(copy, trie.root())
    apply_ops(trie, operations[half:], 3)
    apply_ops(again, operations[half:], 3)
    trie.commit()
    again.commit()
    assert again.root() == trie.root()
    assert store_dict(copy) == store_dict(trie.store)


@SETTINGS
@given(leaves=nonempty_leaf_maps, probe=st.lists(paths, min_size=1, max_size=5))
def test_proofs_of_random_paths_verify(
    leaves: dict[bytes, tuple[bytes, int]], probe: list[bytes]
) -> None:
    trie = build(triples(leaves), commit_every=0)
    root = trie.root()
    by_path = {sha(k): (v, w) for k, (v, w) in leaves.items()}
    for path in probe:
        proof = trie.prove_closest(path)
        value, weight = by_path[proof.closest_path]
        assert proof.closest_value_hash == leaf_payload(value, weight)
        assert (proof.closest_value, proof.closest_weight) == (value, weight)
        assert verify_closest_proof(proof, root)
        compact = proof.compact()
        assert verify_compact_closest_proof(compact, root)
        decoded = CompactClosestProof.from_bytes(compact.to_bytes())
        assert decoded == compact
        assert decoded.decompact() == proof
        assert verify_closest_proof(decoded.decompact(), root)


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index % len(b)] ^= 0x01 << (index % 8)
    return bytes(b)


@SETTINGS
@given(
    leaves=nonempty_leaf_maps.filter(lambda m: len(m) >= 2),
    path=paths,
    where=st.integers(min_value=0, max_value=10_000),
)
def test_tampered_proofs_fail(
    leaves: dict[bytes, tuple[bytes, int]], path: bytes, where: int
) -> None:
    trie = build(triples(leaves))
    root = trie.root()
    proof = trie.prove_closest(path)
    assert verify_closest_proof(proof, root)
    inner = proof.closest_proof
    assert proof.depth >= 1 and inner.side_nodes

    i = where % len(inner.side_nodes)
    sides = list(inner.side_nodes)
    sides[i] = _flip(sides[i], where // 7)
    bad_side = ClosestProof(
        proof.path,
        proof.flipped_bits,
        proof.depth,
        proof.closest_path,
        proof.closest_value_hash,
        MerkleProof(tuple(sides), inner.non_membership_leaf_data, inner.sibling_data),
    )
    assert proof.closest_value_hash is not None
    bad_value = ClosestProof(
        proof.path,
        proof.flipped_bits,
        proof.depth,
        proof.closest_path,
        _flip(proof.closest_value_hash, where),
        inner,
    )
    bit = where % proof.depth
    path_int = int.from_bytes(proof.path, "big") ^ (1 << (255 - bit))
    bad_path = ClosestProof(
        path_int.to_bytes(32, "big"),
        proof.flipped_bits,
        proof.depth,
        proof.closest_path,
        proof.closest_value_hash,
        inner,
    )
    bad_closest_path = ClosestProof(
        proof.path,
        proof.flipped_bits,
        proof.depth,
        _flip(proof.closest_path, where),
        proof.closest_value_hash,
        inner,
    )
    for bad in (bad_side, bad_value, bad_path, bad_closest_path):
        assert verify_closest_proof(bad, root) is False
        blob = _gob_or_none(bad)
        if blob is not None:  # compaction may itself reject the tampered proof
            assert verify_compact_closest_proof(CompactClosestProof.from_bytes(blob), root) is False
    assert verify_closest_proof(proof, _flip(root, where)) is False
    # Bits of Path at or beyond Depth are not covered by the proof (as in Go).
    if proof.depth < 256:
        free = proof.depth + where % (256 - proof.depth)
        loose = int.from_bytes(proof.path, "big") ^ (1 << (255 - free))
        same = ClosestProof(
            loose.to_bytes(32, "big"),
            proof.flipped_bits,
            proof.depth,
            proof.closest_path,
            proof.closest_value_hash,
            inner,
        )
        assert verify_closest_proof(same, root) is True
    if inner.sibling_data:
        data = inner.sibling_data
        # Every byte of a leaf or inner sibling is hashed; of an extension, the path bits
        # outside [start, end) and the trailing copy of the totals are not (as in Go).
        at = 35 + where % 48 if data[0] == 2 else where
        bad_sibling = ClosestProof(
            proof.path,
            proof.flipped_bits,
            proof.depth,
            proof.closest_path,
            proof.closest_value_hash,
            MerkleProof(inner.side_nodes, None, _flip(data, at)),
        )
        assert verify_closest_proof(bad_sibling, root) is False


def _gob_or_none(proof: ClosestProof) -> bytes | None:
    """Gob bytes of a tampered proof, or None when compaction itself rejects it."""
    try:
        return proof.compact().to_bytes()
    except ValueError:
        return None


@SETTINGS
@given(ws=st.lists(st.integers(min_value=2**64 - 2**20, max_value=2**64 - 1), max_size=20))
def test_sums_wrap_mod_2_64(ws: list[int]) -> None:
    items = [(sha(i.to_bytes(4, "big")), b"v", w) for i, w in enumerate(ws)]
    trie = build(items, commit_every=3)
    assert trie.sum() == sum(ws) % 2**64
    assert trie.count() == len(ws)
    assert trie.root() == calc_root(leaves_of(items))


@SETTINGS
@given(
    start=st.integers(min_value=0, max_value=254),
    length=st.integers(min_value=1, max_value=40),
    path=paths,
    child=st.binary(min_size=48, max_size=48),
)
def test_extension_digest_is_the_inner_chain(
    start: int, length: int, path: bytes, child: bytes
) -> None:
    end = min(255, start + length)
    h = child
    for i in range(end - 1, start - 1, -1):
        bit = (path[i // 8] >> (7 - i % 8)) & 1
        h = inner_digest(h, PLACEHOLDER) if bit == 0 else inner_digest(PLACEHOLDER, h)
    assert extension_digest(start, end, path, child) == h


@settings(max_examples=40, deadline=None, derandomize=True)
@given(operations=ops, probe=st.lists(paths, min_size=1, max_size=6))
def test_prove_after_deletes_is_go_or_refuses(
    operations: list[tuple[str, int, bytes, int]], probe: list[bytes]
) -> None:
    """On tries with deletions Go's ProveClosest may panic (spec §10); ours either raises
    SMSTUnsupportedShapeError there or returns a proof whose closest leaf is a live leaf."""
    trie = SparseMerkleSumTrie()
    live = apply_ops(trie, operations, 4)
    live_paths = {sha(k) for k in live}
    for path in probe:
        try:
            proof = trie.prove_closest(path)
        except SMSTUnsupportedShapeError:
            continue
        if live:
            assert proof.closest_path in live_paths
        else:
            assert proof.closest_path == PLACEHOLDER


# Keys of 1, 5 and 7 bytes (and mixed lengths), as in Go smt's random-operation vectors: the
# path is sha256(key), so everything else is as for relay hashes.
short_keys = st.sampled_from([1, 5, 7, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@SETTINGS
@given(
    st.lists(st.tuples(st.booleans(), short_keys, values, small_weights), min_size=1, max_size=50),
    st.integers(min_value=1, max_value=5),
)
def test_short_keys_random_operations_match_the_oracle(
    steps: list[tuple[bool, bytes, bytes, int]], commit_every: int
) -> None:
    trie = SparseMerkleSumTrie()
    live: dict[bytes, tuple[bytes, int]] = {}
    for i, (delete, key, value, weight) in enumerate(steps):
        if delete and key in live:
            trie.delete(key)
            del live[key]
        elif delete:
            try:
                trie.delete(key)
            except SMSTKeyNotFoundError:
                pass
            else:
                raise AssertionError("deleting an absent key must fail")
        else:
            trie.update(key, value, weight)
            live[key] = (value, weight)
        if i % commit_every == 0:
            trie.commit()
    trie.commit()
    assert trie.root() == calc_root(leaves_of((k, v, w) for k, (v, w) in live.items()))
    for key, (value, weight) in live.items():
        assert trie.get(key) == (value, weight)
    again = SparseMerkleSumTrie.import_root(trie.store, trie.root())
    assert set(store_dict(trie.store)) == reachable(store_dict(trie.store), trie.root())
    for key, (value, weight) in live.items():
        assert again.get(key) == (value, weight)
