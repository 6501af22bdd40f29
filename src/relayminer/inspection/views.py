"""What the miner holds in Redis, gathered for ``relayminer inspect`` (pure reads, no writes).

Three views, each a dict ``supplier -> rows`` of plain dataclasses (``as_dict`` for JSON):

- :func:`inspect_sessions`: the session snapshots (state, counters, windows, tx hashes,
  settlement outcome) from ``ha:miner:sessions:{supplier}:*``;
- :func:`inspect_smst`: per session the live and sealed roots of its tree, the root of every
  leaf stored so far (``session_tree_root``, either layout), the count and sum they carry, the
  node count (``HLEN`` of ``ha:smst:{supplier}:{session}:nodes``, Go layout) and the leaf count
  (``HLEN`` of ``...:leaves``, leaf journal);
- :func:`inspect_streams`: per supplier stream ``ha:relays:{supplier}`` its length, pending
  entries, lag and consumers of group ``ha-miners``, and the dead-letter stream length.

Suppliers are found from the session index keys (``ha:miner:sessions:*:index``), plus, for
the SMST and stream views, the tree and stream keys themselves; ``supplier=`` restricts a view
to one supplier. Key names come from :class:`~relayminer.keys.KeyBuilder`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relayminer.keys import KeyBuilder
from relayminer.pipeline.consumer import StreamConsumer
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.nodes import digest_count, digest_sum
from relayminer.smst.tree_root import session_tree_root

__all__ = [
    "Row",
    "SessionRow",
    "SmstRow",
    "StreamRow",
    "find_suppliers",
    "inspect_sessions",
    "inspect_smst",
    "inspect_streams",
    "rows_as_dict",
]

_ROOT_SIZE = 48


@dataclass(frozen=True, slots=True)
class SessionRow:
    supplier: str
    session_id: str
    state: str
    relay_count: int
    compute_units: int
    service_id: str
    application_address: str
    session_start_height: int
    session_end_height: int
    claim_tx_hash: str
    proof_tx_hash: str
    settlement_outcome: str | None
    settlement_height: int | None


@dataclass(frozen=True, slots=True)
class SmstRow:
    supplier: str
    session_id: str
    live_root: str | None  # hex of the 48-byte root; None when absent
    sealed_root: str | None
    count: int  # from the live root (the sealed one when there is no live root)
    sum: int
    nodes: int  # HLEN of the nodes hash
    #: hex of ``session_tree_root``: the tree of every leaf stored so far, in either layout
    root: str | None = None
    leaves: int = 0  # HLEN of the leaf journal


@dataclass(frozen=True, slots=True)
class StreamRow:
    supplier: str
    stream: str
    length: int
    pending: int
    lag: int | None  # None: the group does not exist or the server cannot tell
    consumers: int
    group: str
    dead_letter_stream: str
    dead_letters: int


Row = SessionRow | SmstRow | StreamRow


def rows_as_dict(view: Mapping[str, Sequence[Row]]) -> dict[str, list[dict[str, Any]]]:
    """A view as JSON-ready dicts."""
    return {sup: [dataclasses.asdict(r) for r in rows] for sup, rows in view.items()}


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def _scan(redis: Redis, pattern: str) -> list[str]:
    return sorted({_text(k) async for k in redis.scan_iter(match=pattern, count=1000)})


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def split_supplier(kb: KeyBuilder, rest: str) -> tuple[str | None, str]:
    """``rest`` (a key after its prefix) starts with a supplier segment: the supplier and what
    follows the segment's ``:`` separator. The segment is the address, or in the cluster layout
    its hash tag, which holds colons itself. (None, "") when it does not fit the layout."""
    if kb.hash_tagged:
        end = rest.find("}")
        segment, tail = rest[: end + 1], rest[end + 1 :]
        if end < 0 or (tail and not tail.startswith(":")):
            return None, ""
        return kb.supplier_of_segment(segment), tail[1:]
    segment, _, tail = rest.partition(":")
    return kb.supplier_of_segment(segment), tail


async def find_suppliers(redis: Redis, keys: KeyBuilder | None = None) -> list[str]:
    """Suppliers that have a session index (``ha:miner:sessions:*:index``), sorted."""
    kb = keys or KeyBuilder.for_client(redis)
    prefix = kb.miner_sessions_prefix() + ":"
    found = set()
    for key in await _scan(redis, _glob_escape(prefix) + "*:index"):
        supplier, tail = split_supplier(kb, key[len(prefix) :])
        if supplier and ":" not in supplier and tail == "index":
            found.add(supplier)
    return sorted(found)


async def _suppliers(redis: Redis, kb: KeyBuilder, supplier: str | None) -> list[str]:
    return [supplier] if supplier is not None else await find_suppliers(redis, kb)


# --- sessions ---------------------------------------------------------------------------------


async def inspect_sessions(
    redis: Redis, *, supplier: str | None = None, keys: KeyBuilder | None = None
) -> dict[str, list[SessionRow]]:
    """Every session snapshot per supplier, ordered by end height then session id."""
    kb = keys or KeyBuilder.for_client(redis)
    out: dict[str, list[SessionRow]] = {}
    for sup in await _suppliers(redis, kb, supplier):
        store = RedisSessionStore(redis, SessionStoreConfig(sup, kb.miner_sessions_prefix()))
        snapshots = await store.get_by_supplier()
        snapshots.sort(key=lambda s: (s.session_end_height, s.session_id))
        out[sup] = [
            SessionRow(
                supplier=sup,
                session_id=s.session_id,
                state=s.state.value,
                relay_count=s.relay_count,
                compute_units=s.total_compute_units,
                service_id=s.service_id,
                application_address=s.application_address,
                session_start_height=s.session_start_height,
                session_end_height=s.session_end_height,
                claim_tx_hash=s.claim_tx_hash,
                proof_tx_hash=s.proof_tx_hash,
                settlement_outcome=s.settlement_outcome,
                settlement_height=s.settlement_height,
            )
            for s in snapshots
        ]
    return out


# --- SMST ------------------------------------------------------------------------------------


async def _tree_sessions(redis: Redis, kb: KeyBuilder, supplier: str) -> set[str]:
    """Session ids with any tree key of ``supplier`` (nodes, live or sealed root)."""
    prefix = kb.smst_supplier_prefix(supplier)
    found = set()
    for key in await _scan(redis, _glob_escape(prefix) + "*"):
        rest = key[len(prefix) :]
        sid, _, kind = rest.rpartition(":")
        if sid and ":" not in sid and kind in ("nodes", "live_root", "root", "stats", "leaves"):
            found.add(sid)
    return found


async def _smst_suppliers(redis: Redis, kb: KeyBuilder, supplier: str | None) -> list[str]:
    if supplier is not None:
        return [supplier]
    found = set(await find_suppliers(redis, kb))
    prefix = kb.smst_nodes_prefix()  # "ha:smst:"
    for kind in ("live_root", "leaves"):
        for key in await _scan(redis, _glob_escape(prefix) + f"*:*:{kind}"):
            sup, tail = split_supplier(kb, key[len(prefix) :])
            if sup and ":" not in sup and len(tail.split(":")) == 2:
                found.add(sup)
    return sorted(found)


def _root(raw: bytes | None) -> bytes | None:
    return raw if isinstance(raw, bytes) and len(raw) == _ROOT_SIZE else None


async def inspect_smst(
    redis: Redis, *, supplier: str | None = None, keys: KeyBuilder | None = None
) -> dict[str, list[SmstRow]]:
    """Per supplier, one row per session that has a session snapshot or a tree in Redis."""
    kb = keys or KeyBuilder.for_client(redis)
    out: dict[str, list[SmstRow]] = {}
    for sup in await _smst_suppliers(redis, kb, supplier):
        members: set[bytes | str] = await redis.smembers(kb.miner_sessions_index_key(sup))
        sids = {_text(m) for m in members} | await _tree_sessions(redis, kb, sup)
        ordered = sorted(sids)
        async with redis.pipeline(transaction=False) as pipe:
            for sid in ordered:
                pipe.get(kb.smst_live_root_key(sup, sid))
                pipe.get(kb.smst_root_key(sup, sid))
                pipe.hlen(kb.smst_nodes_key(sup, sid))
                pipe.hlen(kb.smst_leaves_key(sup, sid))
            replies = await pipe.execute()
        rows = []
        for i, sid in enumerate(ordered):
            live, sealed, nodes, leaves = replies[4 * i : 4 * i + 4]
            live_root, sealed_root = _root(live), _root(sealed)
            root = await session_tree_root(redis, sup, sid, kb.ns)
            basis = live_root if live_root is not None else sealed_root
            basis = basis if basis is not None else root
            rows.append(
                SmstRow(
                    supplier=sup,
                    session_id=sid,
                    live_root=live_root.hex() if live_root is not None else None,
                    sealed_root=sealed_root.hex() if sealed_root is not None else None,
                    count=digest_count(basis) if basis is not None else 0,
                    sum=digest_sum(basis) if basis is not None else 0,
                    nodes=int(nodes),
                    root=root.hex() if root is not None else None,
                    leaves=int(leaves),
                )
            )
        out[sup] = rows
    return out


# --- streams ---------------------------------------------------------------------------------


async def _stream_suppliers(redis: Redis, kb: KeyBuilder, supplier: str | None) -> list[str]:
    if supplier is not None:
        return [supplier]
    found = set(await find_suppliers(redis, kb))
    prefix = kb.stream_prefix() + ":"
    for key in await _scan(redis, _glob_escape(prefix) + "*"):
        rest = key[len(prefix) :]
        if rest and ":" not in rest:
            found.add(rest)
    return sorted(found)


async def _group_info(redis: Redis, stream: str, group: str) -> dict[str, Any] | None:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such key
        return None
    for g in groups:
        name = g.get("name")
        if name is not None and _text(name) == group:
            return {_text(k): v for k, v in g.items()}
    return None


async def inspect_streams(
    redis: Redis, *, supplier: str | None = None, keys: KeyBuilder | None = None
) -> dict[str, list[StreamRow]]:
    """One row per supplier stream (a missing stream shows as empty)."""
    kb = keys or KeyBuilder.for_client(redis)
    out: dict[str, list[StreamRow]] = {}
    group = kb.consumer_group()
    for sup in await _stream_suppliers(redis, kb, supplier):
        consumer = StreamConsumer(redis, sup, "relayminer-inspect", keys=kb)
        stream, dead = consumer.stream, consumer.dead_stream
        info = await _group_info(redis, stream, group)
        pending = await consumer.pending_count() if info is not None else 0
        lag = await consumer.lag() if info is not None else None
        out[sup] = [
            StreamRow(
                supplier=sup,
                stream=stream,
                length=int(await redis.xlen(stream)),
                pending=pending,
                lag=lag,
                consumers=int(info.get("consumers", 0)) if info is not None else 0,
                group=group,
                dead_letter_stream=dead,
                dead_letters=int(await redis.xlen(dead)),
            )
        ]
    return out
