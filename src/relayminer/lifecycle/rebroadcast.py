"""Rebroadcast entries: what the inclusion reconciler may resend (docs/lifecycle.md).

A broadcast accepted by the mempool (CheckTx code 0) can still be evicted, or be included and
fail at execution; the reconciler checks every block and resends such a claim or proof from the
stored message (:mod:`relayminer.lifecycle.reconciler`).

Layout (same as the Go miner; the phase sits in braces, a Redis Cluster hash tag):

- ``ha:miner:rebroadcast:{phase}:{supplier}:{E}``: HASH, session id -> JSON entry (below);
- ``ha:miner:rebroadcast:{phase}:index``: SET of ``"{supplier}:{E}"`` groups with entries.

On a Redis Cluster both carry the supplier's hash tag instead and the index is per supplier
(``KeyBuilder.rebroadcast_key``): their writes check the lease key, in the supplier's slot.

Entry JSON: ``m`` marshalled ``MsgCreateClaim``/``MsgSubmitProof`` (base64, as Go's JSON of
``[]byte``), ``h`` height of the latest broadcast, ``t`` latest tx hash (empty: not in the
mempool), ``o`` original tx hash (empty: never broadcast), ``s`` service id, ``n`` resends
done. TTL 1 h on both keys, refreshed on put.

Every write is one script that checks the supplier's lease token first (with a ``fence``): a
stale owner's put or delete raises :class:`LeaseLostError` and changes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relayminer.errors import LeaseLostError
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.runtime.script_batch import ScriptCall, raise_failed, run_script_calls
from relayminer.sessions import scripts

CLAIM = "claim"
PROOF = "proof"


@dataclass
class RebroadcastEntry:
    session_id: str
    message: bytes
    submit_height: int
    tx_hash: str
    original_tx_hash: str
    service_id: str
    resends: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "m": base64.b64encode(self.message).decode(),
                "h": self.submit_height,
                "t": self.tx_hash,
                "o": self.original_tx_hash,
                "s": self.service_id,
                "n": self.resends,
            }
        ).encode()

    @classmethod
    def from_json(cls, session_id: str, raw: bytes) -> RebroadcastEntry:
        doc = json.loads(raw)
        return cls(
            session_id,
            base64.b64decode(doc["m"]),
            int(doc["h"]),
            str(doc["t"]),
            str(doc["o"]),
            str(doc.get("s", "")),
            int(doc.get("n", 0)),
        )

    def resend_due(self, height: int, inclusion_deadline_blocks: int) -> bool:
        """Whether a tx that is in no block may be resent at ``height``: from the next block
        when it is not in the mempool (never broadcast, or a resend refused); otherwise only
        once its inclusion deadline (``inclusion_deadline_blocks``
        after its last broadcast) has passed. Earlier, it may simply be on its way: a resend
        then is a redundant tx, and on a real chain every tx is a fee.

        >>> e = RebroadcastEntry("s", b"", submit_height=10, tx_hash="AB", original_tx_hash="AB",
        ...                      service_id="svc")
        >>> e.resend_due(11, 2), e.resend_due(12, 2)
        (False, True)
        """
        if not self.tx_hash:
            return height > self.submit_height
        return height >= self.submit_height + inclusion_deadline_blocks


class RebroadcastStore:
    """Rebroadcast entries of one supplier."""

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        *,
        keys: KeyBuilder | None = None,
        ttl_seconds: int = 3600,
        fence: Fence | None = None,
    ) -> None:
        self._redis = redis
        self.supplier = supplier
        self.keys = keys or KeyBuilder.for_client(redis)
        self.ttl = ttl_seconds
        self.fence = fence
        self._put = redis.register_script(scripts.REBROADCAST_PUT)
        self._delete = redis.register_script(scripts.REBROADCAST_DELETE)
        #: phase -> this supplier's group end heights, once read (see :meth:`groups`)
        self._known: dict[str, set[int]] = {}

    def _fence_args(self) -> tuple[str, str]:
        if self.fence is None:
            return self.keys.miner_claim_key(self.supplier), ""
        return self.fence.key, self.fence.token

    async def _write(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        fence_key, token = self._fence_args()
        try:
            return await script(keys=[fence_key, *keys], args=[token, *args])
        except ResponseError as err:
            if "FENCED" in str(err):
                raise LeaseLostError(f"lease of {self.supplier} lost: rebroadcast write") from err
            raise

    def _member(self, end_height: int) -> str:
        return f"{self.supplier}:{end_height}"

    async def put(self, phase: str, end_height: int, entry: RebroadcastEntry) -> None:
        await self.put_many(phase, end_height, [entry])

    async def put_many(
        self, phase: str, end_height: int, entries: Sequence[RebroadcastEntry]
    ) -> None:
        """Keep the entries of one group, in one round trip (each write fenced)."""
        if not entries:
            return
        key = self.keys.rebroadcast_key(phase, self.supplier, end_height)
        index = self.keys.rebroadcast_index_key(phase, self.supplier)
        fence_key, token = self._fence_args()
        calls = [
            ScriptCall(
                self._put,
                [fence_key, key, index],
                [token, self.ttl, e.session_id, e.to_json(), self._member(end_height)],
            )
            for e in entries
        ]
        replies = await run_script_calls(self._redis, calls, one_by_one=self.keys.hash_tagged)
        raise_failed(replies, f"lease of {self.supplier} lost: rebroadcast write")
        known = self._known.get(phase)
        if known is not None:
            known.add(end_height)

    async def groups(self, phase: str) -> list[int]:
        """Session end heights of this supplier that have entries in ``phase``.

        The phase index is shared by every supplier (the Go layout), so it is read once per
        store, when the pipeline starts (a takeover finds the old owner's entries there); from
        then on this store knows its groups itself: while the lease is ours nobody else writes
        them. Reading the whole index at every pass would cost ``O(suppliers)`` per supplier
        per block.
        """
        known = self._known.get(phase)
        if known is None:
            index = self.keys.rebroadcast_index_key(phase, self.supplier)
            members: set[bytes] = await self._redis.smembers(index)  # type: ignore[assignment]
            known = set()
            for m in members:
                supplier, _, end = m.decode().rpartition(":")
                if supplier == self.supplier and end.isdigit():
                    known.add(int(end))
            self._known[phase] = known
        return sorted(known)

    def pending(self) -> bool:
        """Whether the reconciler may have work: a known group in any phase, or a phase whose
        groups were not read yet (no round trip)."""
        return any(self._known.get(phase, True) for phase in (CLAIM, PROOF))

    async def entries(self, phase: str, end_height: int) -> dict[str, RebroadcastEntry]:
        key = self.keys.rebroadcast_key(phase, self.supplier, end_height)
        raw: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
        if not raw:  # emptied or expired: reap the index member
            await self._write(
                self._delete,
                [key, self.keys.rebroadcast_index_key(phase, self.supplier)],
                ["", self._member(end_height)],
            )
            self._known.get(phase, set()).discard(end_height)
        return {sid.decode(): RebroadcastEntry.from_json(sid.decode(), v) for sid, v in raw.items()}

    async def delete(self, phase: str, end_height: int, session_id: str) -> None:
        await self.delete_many(phase, end_height, [session_id])

    async def delete_many(self, phase: str, end_height: int, session_ids: Sequence[str]) -> None:
        """Drop entries of one group, in one round trip (each delete fenced); the group leaves
        the index once emptied."""
        if not session_ids:
            return
        fence_key, token = self._fence_args()
        keys = [
            fence_key,
            self.keys.rebroadcast_key(phase, self.supplier, end_height),
            self.keys.rebroadcast_index_key(phase, self.supplier),
        ]
        calls = [
            ScriptCall(self._delete, keys, [token, sid, self._member(end_height)])
            for sid in session_ids
        ]
        replies = await run_script_calls(self._redis, calls, one_by_one=self.keys.hash_tagged)
        raise_failed(replies, f"lease of {self.supplier} lost: rebroadcast write")
        if 2 in replies:  # the group emptied
            self._known.get(phase, set()).discard(end_height)
