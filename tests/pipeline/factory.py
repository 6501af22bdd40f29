"""Go-format relay messages for the pipeline tests, with the expected outcome of mining them."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.smst.trie import SparseMerkleSumTrie


@dataclass
class Expected:
    """What mining a set of relays must produce for one (supplier, session)."""

    trie: SparseMerkleSumTrie = field(default_factory=SparseMerkleSumTrie)
    relay_count: int = 0
    compute_units: int = 0
    hashes: set[bytes] = field(default_factory=set)

    def add(self, relay_bytes: bytes, cu: int) -> None:
        h = hashlib.sha256(relay_bytes).digest()
        if h in self.hashes:
            return
        self.hashes.add(h)
        self.trie.update(h, relay_bytes, cu)
        self.relay_count += 1
        self.compute_units += cu


def relay_message(
    rng: random.Random,
    supplier: str,
    session: str,
    *,
    cu: int = 10,
    start: int = 1,
    end: int = 10,
    with_hash: bool = True,
    size: int = 200,
) -> MinedRelayMessage:
    relay_bytes = rng.randbytes(size)
    return MinedRelayMessage(
        relay_hash=hashlib.sha256(relay_bytes).digest() if with_hash else b"",
        relay_bytes=relay_bytes,
        compute_units_per_relay=cu,
        session_id=session,
        session_start_height=start,
        session_end_height=end,
        supplier_operator_address=supplier,
        service_id="svc-" + session[-1:],
        application_address="pokt1app",
        arrival_block_height=start + 1,
    )


def workload(
    seed: int, suppliers: list[str], sessions: list[str], n: int, *, duplicate_every: int = 0
) -> tuple[list[MinedRelayMessage], dict[tuple[str, str], Expected]]:
    """``n`` relays spread over suppliers x sessions (every ``duplicate_every``-th one repeated
    byte for byte), and the expected state per (supplier, session)."""
    rng = random.Random(seed)
    msgs: list[MinedRelayMessage] = []
    expected: dict[tuple[str, str], Expected] = {}
    for i in range(n):
        sup = suppliers[i % len(suppliers)]
        sess = sessions[(i // len(suppliers)) % len(sessions)]
        m = relay_message(rng, sup, sess, cu=7 + (i % 3 == 0) * 5, with_hash=i % 11 != 0)
        msgs.append(m)
        expected.setdefault((sup, sess), Expected()).add(m.relay_bytes, m.compute_units_per_relay)
        if duplicate_every and i % duplicate_every == 0:
            dup = MinedRelayMessage()
            dup.CopyFrom(m)
            msgs.append(dup)
    return msgs, expected


def reachable_nodes(nodes: dict[bytes, bytes], root: bytes) -> dict[bytes, bytes]:
    """The nodes reachable from ``root`` (each parsed and checked against its digest); raises
    if one is missing."""
    from relayminer.smst.nodes import PLACEHOLDER, ParsedExtension, ParsedInner, parse_node

    seen: dict[bytes, bytes] = {}
    todo = [root]
    while todo:
        digest = todo.pop()
        if digest == PLACEHOLDER or digest in seen:
            continue
        data = nodes[digest]  # KeyError: the tree is incomplete
        seen[digest] = data
        parsed = parse_node(data, digest)
        if isinstance(parsed, ParsedInner):
            todo += [parsed.left, parsed.right]
        elif isinstance(parsed, ParsedExtension):
            todo.append(parsed.child)
    return seen


def assert_complete_tree(nodes: dict[bytes, bytes], root: bytes, expected: Expected) -> None:
    """``nodes`` hold exactly the tree of ``root`` (no missing node, no orphan left over) and
    that tree holds exactly the expected leaves (its root equals the expected trie's)."""
    from relayminer.smst.mapstore import MemoryMapStore

    assert root == expected.trie.root()
    assert reachable_nodes(nodes, root) == nodes
    trie = SparseMerkleSumTrie.import_root(MemoryMapStore(nodes.items()), root)
    for h in expected.hashes:
        assert trie.get(h) is not None
