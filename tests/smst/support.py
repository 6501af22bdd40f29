"""Shared helpers of the SMST tests: the Go vectors and independent oracles."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from relayminer.smst.mapstore import MapStore, MemoryMapStore
from relayminer.smst.nodes import PLACEHOLDER, leaf_payload
from relayminer.smst.trie import SparseMerkleSumTrie

# A verbatim copy of shared/vectors/smst_vectors.json (Go smt v0.14.1 output), so the suite
# runs from the repository alone; test_vectors_file_is_the_go_output pins its SHA-256.
VECTORS_PATH = Path(__file__).with_name("smst_vectors.json")
VECTORS_SHA256 = "588ae2cec34885d0335c760d1eec42910995c96243f049e1f4552b27883d41f0"
SHARED_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "smst_vectors.json"


@functools.cache
def vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text())  # type: ignore[no-any-return]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def store_digest(store: MapStore) -> str:
    """``store_digest_hex`` of the vectors: sha256 over digest||preimage sorted by digest."""
    acc = hashlib.sha256()
    for key, value in sorted(store.items()):
        acc.update(key + value)
    return acc.hexdigest()


def store_dict(store: MapStore) -> dict[bytes, bytes]:
    return dict(store.items())


def leaves_of(triples: Iterable[tuple[bytes, bytes, int]]) -> list[tuple[bytes, bytes]]:
    """(path, payload) pairs for :func:`relayminer.smst.nodes.calc_root` from (key, value,
    weight) triples; a later triple with the same key replaces an earlier one."""
    by_key: dict[bytes, tuple[bytes, int]] = {}
    for key, value, weight in triples:
        by_key[key] = (value, weight)
    return [(sha(k), leaf_payload(v, w)) for k, (v, w) in by_key.items()]


def build(
    triples: Iterable[tuple[bytes, bytes, int]],
    commit_every: int = 1,
    store: MapStore | None = None,
) -> SparseMerkleSumTrie:
    trie = SparseMerkleSumTrie(store if store is not None else MemoryMapStore())
    for i, (key, value, weight) in enumerate(triples, 1):
        trie.update(key, value, weight)
        if commit_every and i % commit_every == 0:
            trie.commit()
    trie.commit()
    return trie


def reachable(store: Mapping[bytes, bytes], root: bytes) -> set[bytes]:
    """Digests of every node reachable from ``root`` through the stored preimages, parsed
    independently of the trie code (§3.5)."""
    seen: set[bytes] = set()
    todo = [root]
    while todo:
        digest = todo.pop()
        if digest == PLACEHOLDER or digest in seen:
            continue
        seen.add(digest)
        data = store[digest]
        if data[0] == 1:
            todo += [data[1:49], data[49:97]]
        elif data[0] == 2:
            todo.append(data[35:83])
    return seen


def node_kind(data: bytes | None) -> str:
    if not data:
        return "none"
    return {0: "leaf", 1: "inner", 2: "extension"}[data[0]]
