"""Bad input, missing and corrupt nodes, retries after failures, and store discipline."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayminer.errors import RelayMinerError
from relayminer.smst.mapstore import BatchMapStore, MapStore, MemoryMapStore
from relayminer.smst.nodes import (
    PLACEHOLDER,
    calc_root,
    encode_extension,
    encode_inner,
    encode_leaf,
    extension_digest,
    inner_digest,
    leaf_digest,
    leaf_payload,
    parse_node,
)
from relayminer.smst.trie import (
    SMSTInvalidArgumentError,
    SMSTKeyNotFoundError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    SMSTUnsupportedShapeError,
    SparseMerkleSumTrie,
)

from .support import build, leaves_of, reachable, sha, store_dict

KEY = sha(b"a")


def small_trie(n: int = 12) -> SparseMerkleSumTrie:
    return build([(sha(bytes([i])), b"v%d" % i, i + 1) for i in range(n)])


def bits(path: bytes) -> str:
    return "".join(f"{b:08b}" for b in path)


def key_with_prefix(prefix: str, avoid: Iterable[bytes] = ()) -> bytes:
    """A 32-byte key whose path (sha256 of it) starts with the bit string ``prefix``."""
    taken = set(avoid)
    for i in range(100_000):
        key = sha(b"k" + i.to_bytes(4, "big"))
        if key not in taken and bits(sha(key)).startswith(prefix):
            return key
    raise AssertionError("no key found")  # pragma: no cover


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"\x00", b"abcde", b"\x07" * 7, b"\x00" * 33, b"x" * 64])
def test_keys_of_any_length_are_hashed_to_their_path(key: bytes) -> None:
    """As in Go smt: the path is sha256(key) whatever the key's length."""
    trie = SparseMerkleSumTrie()
    trie.update(key, b"v", 3)
    trie.update(sha(b"other"), b"w", 4)
    assert trie.get(key) == (b"v", 3)
    assert trie.root() == calc_root(leaves_of([(key, b"v", 3), (sha(b"other"), b"w", 4)]))
    trie.commit()
    trie.delete(key)
    assert trie.get(key) is None and trie.count() == 1


@pytest.mark.parametrize("key", ["a" * 32, 5, None, [0] * 32])
def test_key_must_be_bytes(key: object) -> None:
    trie = SparseMerkleSumTrie()
    with pytest.raises(TypeError, match="key must be bytes"):
        trie.update(key, b"v", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        trie.delete(key)  # type: ignore[arg-type]


def test_bytes_like_arguments_are_accepted() -> None:
    a, b = SparseMerkleSumTrie(), SparseMerkleSumTrie()
    a.update(KEY, b"value", 3)
    b.update(bytearray(KEY), memoryview(b"value"), 3)
    assert a.root() == b.root()
    assert b.get(memoryview(KEY)) == (b"value", 3)


@pytest.mark.parametrize("value", ["str", 1, None])
def test_value_must_be_bytes(value: object) -> None:
    with pytest.raises(TypeError, match="value must be bytes"):
        SparseMerkleSumTrie().update(KEY, value, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [-1, 2**64, 2**80])
def test_weight_out_of_range(weight: int) -> None:
    trie = SparseMerkleSumTrie()
    with pytest.raises(SMSTInvalidArgumentError, match="weight"):
        trie.update(KEY, b"v", weight)
    assert trie.root() == PLACEHOLDER and not trie.has_uncommitted_changes


@pytest.mark.parametrize("weight", [1.0, "1", None, True])
def test_weight_must_be_int(weight: object) -> None:
    with pytest.raises(TypeError, match="weight"):
        SparseMerkleSumTrie().update(KEY, b"v", weight)  # type: ignore[arg-type]


def test_weight_bounds_accepted() -> None:
    trie = SparseMerkleSumTrie()
    trie.update(KEY, b"v", 2**64 - 1)
    trie.update(sha(b"b"), b"v", 0)
    assert trie.sum() == 2**64 - 1 and trie.count() == 2


def test_delete_of_absent_key_is_key_error() -> None:
    trie = small_trie()
    before = (trie.root(), store_dict(trie.store))
    for absent in (sha(b"absent"), sha(b"other")):
        with pytest.raises(KeyError) as info:
            trie.delete(absent)
        assert isinstance(info.value, SMSTKeyNotFoundError)
        assert isinstance(info.value, RelayMinerError)
        assert absent.hex() in str(info.value)
    assert not trie.has_uncommitted_changes
    trie.commit()
    assert (trie.root(), store_dict(trie.store)) == before
    with pytest.raises(SMSTKeyNotFoundError):
        SparseMerkleSumTrie().delete(KEY)


@pytest.mark.parametrize("path", [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 48])
def test_prove_path_must_be_32_bytes(path: bytes) -> None:
    with pytest.raises(SMSTInvalidArgumentError, match="path hasher size"):
        small_trie().prove_closest(path)


def test_prove_path_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        small_trie().prove_closest("0" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("root", [b"", b"\x00" * 32, b"\x00" * 47, b"\x00" * 49])
def test_import_root_must_be_48_bytes(root: bytes) -> None:
    with pytest.raises(SMSTInvalidArgumentError, match="48 bytes"):
        SparseMerkleSumTrie.import_root(MemoryMapStore(), root)


def test_import_root_and_store_types() -> None:
    with pytest.raises(TypeError):
        SparseMerkleSumTrie.import_root(MemoryMapStore(), "00" * 48)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MapStore"):
        SparseMerkleSumTrie({})  # type: ignore[arg-type]


# --- missing nodes --------------------------------------------------------------------------


def test_missing_node_after_import_names_its_digest() -> None:
    trie = small_trie()
    store = MemoryMapStore(trie.store.items())
    root_data = store.get(trie.root())
    assert root_data is not None and root_data[0] == 1
    left = root_data[1:49]
    store.delete(left)
    again = SparseMerkleSumTrie.import_root(store, trie.root())
    assert again.root() == trie.root()  # nothing loaded yet
    # Some key below the missing left child:
    key = next(sha(bytes([i])) for i in range(12) if bits(sha(sha(bytes([i]))))[0] == "0")
    for op in (
        lambda: again.update(key, b"new", 1),
        lambda: again.get(key),
        lambda: again.delete(key),
        lambda: again.prove_closest(sha(key)),
    ):
        with pytest.raises(SMSTNodeMissingError) as info:
            op()
        assert info.value.digest == left
        assert isinstance(info.value, RelayMinerError)
        assert left.hex() in str(info.value)
    assert again.root() == trie.root()
    assert not again.has_uncommitted_changes


def test_missing_root_node() -> None:
    trie = small_trie()
    again = SparseMerkleSumTrie.import_root(MemoryMapStore(), trie.root())
    with pytest.raises(SMSTNodeMissingError) as info:
        again.update(KEY, b"v", 1)
    assert info.value.digest == trie.root()
    assert again.root() == trie.root() and again.count() == 12


class FlakyStore:
    """A MapStore that answers None for chosen keys the first time they are read."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]], flaky: Iterable[bytes]) -> None:
        self.data = dict(items)
        self.flaky = set(flaky)
        self.misses = 0

    def get(self, key: bytes) -> bytes | None:
        if key in self.flaky:
            self.flaky.discard(key)
            self.misses += 1
            return None
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.data.items()


def retrying(call):  # type: ignore[no-untyped-def]
    """Run ``call`` until it stops raising SMSTNodeMissingError (each retry must be safe)."""
    for _ in range(1000):
        try:
            return call()
        except SMSTNodeMissingError:
            continue
    raise AssertionError("did not converge")  # pragma: no cover


op_lists = st.lists(
    st.tuples(
        st.sampled_from(["update", "delete", "get", "prove", "commit"]),
        st.integers(min_value=0, max_value=23),
        st.binary(max_size=8),
        st.integers(min_value=0, max_value=50),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=op_lists, flaky_seed=st.integers(min_value=0, max_value=2**32))
def test_operations_can_be_retried_after_missing_nodes(
    ops: list[tuple[str, int, bytes, int]], flaky_seed: int
) -> None:
    """A trie imported over a store that loses reads ends exactly like one that never did."""
    import random

    base = small_trie(16)
    keys = [sha(bytes([i])) for i in range(24)]
    rnd = random.Random(flaky_seed)
    flaky = [k for k in store_dict(base.store) if rnd.random() < 0.5]
    store = FlakyStore(base.store.items(), flaky)
    ref_store = MemoryMapStore(base.store.items())
    trie = SparseMerkleSumTrie.import_root(store, base.root())
    ref = SparseMerkleSumTrie.import_root(ref_store, base.root())

    for kind, i, value, weight in ops:
        key = keys[i]
        if kind == "update":
            before = trie.root()
            try:
                trie.update(key, value, weight)
            except SMSTNodeMissingError:
                assert trie.root() == before
                retrying(lambda: trie.update(key, value, weight))  # noqa: B023
            ref.update(key, value, weight)
        elif kind == "delete":
            expected_missing = ref.get(key) is None
            try:
                retrying(lambda: trie.delete(key))  # noqa: B023
            except SMSTKeyNotFoundError:
                assert expected_missing
            else:
                assert not expected_missing
            if not expected_missing:
                ref.delete(key)
        elif kind == "get":
            assert retrying(lambda: trie.get(key)) == ref.get(key)  # noqa: B023
        elif kind == "prove":
            got = retrying(lambda: trie.prove_closest(sha(key)))  # noqa: B023
            try:
                want = ref.prove_closest(sha(key))
            except SMSTUnsupportedShapeError:
                continue
            assert got == want
        else:
            trie.commit()
            ref.commit()
        assert trie.root() == ref.root()
    trie.commit()
    ref.commit()
    assert store.data == store_dict(ref_store)


def test_every_node_missing_once_still_converges() -> None:
    base = small_trie(16)
    store = FlakyStore(base.store.items(), store_dict(base.store))
    trie = SparseMerkleSumTrie.import_root(store, base.root())
    ref = SparseMerkleSumTrie.import_root(MemoryMapStore(base.store.items()), base.root())
    for i in range(16, 24):
        key = sha(bytes([i]))
        retrying(lambda: trie.update(key, b"new", 5))  # noqa: B023
        ref.update(key, b"new", 5)
    retrying(lambda: trie.delete(sha(bytes([3]))))
    ref.delete(sha(bytes([3])))
    for i in range(30):
        path = sha(b"probe" + bytes([i]))
        assert retrying(lambda: trie.prove_closest(path)) == ref.prove_closest(path)  # noqa: B023
    trie.commit()
    ref.commit()
    assert store.misses > 10
    assert store.data == store_dict(ref.store)
    assert reachable(store.data, trie.root()) == set(store.data)


# --- corrupt nodes --------------------------------------------------------------------------

LEAF_PATH = sha(KEY)
LEAF = encode_leaf(LEAF_PATH, leaf_payload(b"value", 7))
LEAF_D = leaf_digest(LEAF_PATH, leaf_payload(b"value", 7))
OTHER = leaf_digest(sha(b"x"), leaf_payload(b"v", 1))
INNER = encode_inner(LEAF_D, OTHER)
EXT = encode_extension(3, 9, LEAF_PATH, inner_digest(LEAF_D, OTHER))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty node bytes"),
        (b"\x05" + bytes(60), "unknown node kind byte 0x05"),
        (LEAF[:48], "leaf is 48 bytes"),
        (LEAF[:-1] + b"\x02", "leaf count field is not 1"),
        (INNER[:-1], "inner node is 112 bytes"),
        (encode_inner(PLACEHOLDER, PLACEHOLDER), "two empty children"),
        (INNER[:-16] + bytes(16), "inner totals"),
        (EXT + b"\x00", "extension node is 100 bytes"),
        (b"\x02\x09\x09" + EXT[3:], "bounds [9, 9) are empty"),
        (b"\x02\x09\x03" + EXT[3:], "bounds [9, 3) are empty"),
        (encode_extension(3, 9, LEAF_PATH, PLACEHOLDER), "over the empty subtree"),
        (EXT[:-1] + b"\x09", "totals differ"),
    ],
)
def test_parse_rejects_malformed_nodes(data: bytes, reason: str) -> None:
    with pytest.raises(SMSTNodeCorruptError, match=reason.replace("[", r"\[").replace(")", r"\)")):
        parse_node(data)


def test_parse_rejects_count_overflow() -> None:
    big = bytes(32) + (1).to_bytes(8, "big") + (2**64 - 1).to_bytes(8, "big")
    one = bytes(32) + (1).to_bytes(8, "big") + (1).to_bytes(8, "big")
    data = b"\x01" + big + one + (2).to_bytes(8, "big") + (0).to_bytes(8, "big")
    with pytest.raises(SMSTNodeCorruptError, match="counts overflow"):
        parse_node(data)


def test_parse_checks_the_digest() -> None:
    assert parse_node(LEAF, LEAF_D)
    assert parse_node(EXT, extension_digest(3, 9, LEAF_PATH, inner_digest(LEAF_D, OTHER)))
    with pytest.raises(SMSTNodeCorruptError, match="do not hash to their store key") as info:
        parse_node(LEAF, OTHER)
    assert info.value.digest == OTHER
    assert OTHER.hex() in str(info.value)


def corrupt_import(replace: dict[bytes, bytes]) -> tuple[SparseMerkleSumTrie, bytes]:
    trie = small_trie()
    store = MemoryMapStore(trie.store.items())
    for k, v in replace.items():
        store.set(k, v)
    return SparseMerkleSumTrie.import_root(store, trie.root()), trie.root()


def test_corrupt_stored_node_raises_on_use() -> None:
    trie = small_trie()
    root = trie.root()
    for bad in (b"garbage", LEAF, trie.store.get(root)[:-1]):  # type: ignore[index]
        again, _ = corrupt_import({root: bad})
        with pytest.raises(SMSTNodeCorruptError) as info:
            again.update(KEY, b"v", 1)
        assert isinstance(info.value, ValueError)
        assert info.value.digest == root
        assert again.root() == root


def test_extension_over_a_leaf_is_corrupt() -> None:
    child = LEAF_D
    ext_digest = extension_digest(0, 4, LEAF_PATH, child)
    store = MemoryMapStore([(ext_digest, encode_extension(0, 4, LEAF_PATH, child)), (child, LEAF)])
    trie = SparseMerkleSumTrie.import_root(store, ext_digest)
    with pytest.raises(SMSTNodeCorruptError, match="not inner"):
        trie.get(KEY)


def test_extension_at_the_wrong_depth_is_corrupt() -> None:
    inner = inner_digest(LEAF_D, OTHER)
    ext = extension_digest(5, 9, LEAF_PATH, inner)  # must start at depth 1 below the root
    root_left, root_right = (ext, PLACEHOLDER) if bits(LEAF_PATH)[0] == "0" else (PLACEHOLDER, ext)
    root = inner_digest(root_left, root_right)
    store = MemoryMapStore(
        [
            (root, encode_inner(root_left, root_right)),
            (ext, encode_extension(5, 9, LEAF_PATH, inner)),
        ]
    )
    trie = SparseMerkleSumTrie.import_root(store, root)
    with pytest.raises(SMSTNodeCorruptError, match="starts at bit 5 but sits at depth 1"):
        trie.update(KEY, b"v", 1)


# --- commit and the store -------------------------------------------------------------------


class RecordingStore:
    """A plain MapStore (no batch methods) that logs every call."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.data = dict(items)
        self.log: list[tuple[str, bytes]] = []

    def get(self, key: bytes) -> bytes | None:
        self.log.append(("get", key))
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.log.append(("set", key))
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.log.append(("delete", key))
        self.data.pop(key, None)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.data.items()


def test_only_commit_writes_and_deletes_come_first() -> None:
    store = RecordingStore()
    assert isinstance(store, MapStore) and not isinstance(store, BatchMapStore)
    trie = SparseMerkleSumTrie(store)
    for i in range(30):
        trie.update(sha(bytes([i])), b"v", i)
    assert store.log == []
    assert trie.has_uncommitted_changes
    trie.commit()
    assert {op for op, _ in store.log} == {"set"}
    assert not trie.has_uncommitted_changes
    store.log.clear()
    trie.update(sha(bytes([3])), b"new", 1)
    trie.update(sha(b"fresh"), b"new", 1)
    trie.delete(sha(bytes([7])))
    assert store.log == []
    trie.commit()
    ops = [op for op, _ in store.log]
    assert ops == sorted(ops)  # every "delete" before every "set"
    assert "delete" in ops and "set" in ops
    assert reachable(store.data, trie.root()) == set(store.data)
    # Same contents as a batch store.
    batch = build([(sha(bytes([i])), b"v", i) for i in range(30)], commit_every=0)
    batch.update(sha(bytes([3])), b"new", 1)
    batch.update(sha(b"fresh"), b"new", 1)
    batch.delete(sha(bytes([7])))
    batch.commit()
    assert store.data == store_dict(batch.store)


def test_imported_trie_only_reads_until_commit() -> None:
    base = small_trie()
    store = RecordingStore(base.store.items())
    trie = SparseMerkleSumTrie.import_root(store, base.root())
    trie.update(KEY, b"v", 1)
    trie.get(sha(bytes([2])))
    trie.prove_closest(sha(b"p"))
    assert {op for op, _ in store.log} == {"get"}
    gets = [k for _, k in store.log]
    assert len(gets) == len(set(gets))  # each node is read once, then cached
    assert PLACEHOLDER not in gets


class FailingOnceStore(MemoryMapStore):
    """A batch store whose first set_many fails after applying half of the writes."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        pairs = list(items)
        if self.fail:
            self.fail = False
            super().set_many(pairs[: len(pairs) // 2])
            raise OSError("store down")
        super().set_many(pairs)


def test_failed_commit_is_redone_by_the_next() -> None:
    store = FailingOnceStore()
    trie = SparseMerkleSumTrie(store)
    ref = SparseMerkleSumTrie()
    items = [(sha(bytes([i])), b"v%d" % i, i) for i in range(40)]
    for k, v, w in items[:20]:
        trie.update(k, v, w)
        ref.update(k, v, w)
    with pytest.raises(OSError, match="store down"):
        trie.commit()
    assert trie.has_uncommitted_changes
    for k, v, w in items[20:]:
        trie.update(k, v, w)
        ref.update(k, v, w)
    trie.commit()
    ref.commit()
    assert store_dict(store) == store_dict(ref.store)
    assert reachable(store_dict(store), trie.root()) == set(store_dict(store))


# --- post-delete shapes (spec §10) ----------------------------------------------------------


def test_prove_closest_refuses_where_go_panics() -> None:
    """Ext [0,2) over an inner node whose left side was emptied by a delete; a path into
    that empty side makes Go panic with ``depth != extNode.pathStart``."""
    x = key_with_prefix("000")
    y1 = key_with_prefix("0010", [x])
    y2 = key_with_prefix("0011", [x, y1])
    trie = build([(x, b"x", 1), (y1, b"y1", 1), (y2, b"y2", 1)])
    trie.delete(x)
    trie.commit()
    with pytest.raises(SMSTUnsupportedShapeError, match="extension start"):
        trie.prove_closest(bytes(32))
    # Other paths still work, and the store still holds exactly the structure.
    proof = trie.prove_closest(b"\xff" * 32)
    assert proof.closest_path in {sha(y1), sha(y2)}
    assert reachable(store_dict(trie.store), trie.root()) == set(store_dict(trie.store))
