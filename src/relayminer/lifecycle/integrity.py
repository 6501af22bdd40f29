"""The check a tree passes before its root is claimed (never claim a wrong or unprovable root).

Two ways a tree can go wrong without any write failing, both reproduced by evicting keys:

- ``live_root`` lost: a fresh worker starts an empty tree, so the sealed root covers only the
  relays counted since (its count and sum fall short of the session's counters);
- ``:nodes`` lost while a worker still holds its tree in memory: the root is right, but the
  nodes under it are not all stored, so a proof at some paths cannot be built.

:func:`check_tree` compares the sealed root's count and sum with the session's
``relay_count`` and ``total_compute_units`` and builds closest proofs at sample paths, each
verified against the root. A tree *ahead* of the counters (its relays were committed but their
accounting step has not run yet) is not damage: the caller waits for the counters, and at its
last chance claims the tree, which holds every committed relay.

In the journal layout (``strict``) the tree is built from the very leaves whose first write
moved the counters, in the same script, so any difference between them is damage: a tree ahead
of its counters cannot come from accounting in flight and is refused like a short one.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from relayminer.sessions.model import SessionSnapshot
from relayminer.smst.nodes import SMSTError, digest_count, digest_sum
from relayminer.smst.proof import verify_closest_proof
from relayminer.smst.session_trees import SessionTrees

__all__ = ["TreeCheck", "TreeVerdict", "check_tree", "sample_paths"]


class TreeVerdict(enum.StrEnum):
    OK = "ok"
    #: the tree holds more than the counters: accounting in flight (or lost after the commit)
    COUNTERS_BEHIND = "counters_behind"
    #: the tree holds fewer relays or compute units than were counted: leaves were lost
    TREE_SHORT = "tree_short"
    #: count and sum disagree in different directions
    COUNTERS_DIFFER = "counters_differ"
    #: a closest proof could not be built or does not verify against the root
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class TreeCheck:
    verdict: TreeVerdict
    detail: str = ""

    @property
    def damaged(self) -> bool:
        """True when the root must never be claimed."""
        return self.verdict in (
            TreeVerdict.TREE_SHORT,
            TreeVerdict.COUNTERS_DIFFER,
            TreeVerdict.INCOMPLETE,
        )


def sample_paths(session_id: str, n: int) -> list[bytes]:
    """``n`` deterministic 32-byte paths spread over the key space (sha256 of the session id
    and an index), so that any replica checks the same ones."""
    return [hashlib.sha256(f"{session_id}/tree-check/{i}".encode()).digest() for i in range(n)]


async def check_tree(
    trees: SessionTrees,
    snapshot: SessionSnapshot,
    root: bytes,
    samples: int,
    *,
    strict: bool = False,
) -> TreeCheck:
    """Check the sealed ``root`` of ``snapshot``'s session (module docstring); ``strict``: any
    difference from the counters is damage (journal layout)."""
    count, total = digest_count(root), digest_sum(root)
    want_count, want_total = snapshot.relay_count, snapshot.total_compute_units
    detail = f"tree {count} relays / {total} CU, counters {want_count} / {want_total}"
    if (count, total) != (want_count, want_total):
        if strict:
            return TreeCheck(TreeVerdict.COUNTERS_DIFFER, f"{detail} (written together)")
        if count >= want_count and total >= want_total:
            return TreeCheck(TreeVerdict.COUNTERS_BEHIND, detail)
        if count <= want_count and total <= want_total:
            return TreeCheck(TreeVerdict.TREE_SHORT, detail)
        return TreeCheck(TreeVerdict.COUNTERS_DIFFER, detail)
    if count == 0:
        return TreeCheck(TreeVerdict.OK)
    paths = sample_paths(snapshot.session_id, samples)
    if not paths:
        return TreeCheck(TreeVerdict.OK)
    try:  # every sample's nodes in one round trip
        sealed, proofs = await trees.prove_closest_many(snapshot.session_id, paths)
    except SMSTError as err:
        return TreeCheck(TreeVerdict.INCOMPLETE, f"a sample proof cannot be built: {err!r}")
    for path, proof in zip(paths, proofs, strict=True):
        if sealed != root or not verify_closest_proof(proof, root):
            return TreeCheck(TreeVerdict.INCOMPLETE, f"proof at {path.hex()[:16]} does not verify")
    return TreeCheck(TreeVerdict.OK)
