"""One snapshot of a whole deployment, read from Redis alone (``relayminer status``).

What it reads (all key names from :class:`~relayminer.keys.KeyBuilder`):

- replicas: the active set ``ha:miner:active`` and each heartbeat ``ha:miner:instance:{id}``
  (value: the heartbeat time in ns); the suppliers each holds are the lease keys
  ``ha:miner:claim:{supplier}``, whose token is ``{instance}:{nonce}``;
- per supplier: stream length, pending, lag and dead letters (as ``inspect streams``), the
  lease owner and its remaining TTL;
- sessions by state in the current and the previous session window: the two highest session
  end heights among the supplier's sessions;
- the latest claim outcome (the most recent session past ``claiming``) and the latest proof
  outcome (the most recent session that finished its proof step), with the settlement outcome
  when the chain reported one;
- the simulated chain's height and the age of its latest block, when a simulated chain lives in
  this namespace (omitted otherwise).

Nothing is written; a deployment can be watched while it runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from relayminer.inspection.views import (
    _glob_escape,
    _scan,
    _stream_suppliers,
    _text,
    inspect_streams,
    split_supplier,
)
from relayminer.keys import KeyBuilder
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig

__all__ = [
    "ChainStatus",
    "DeploymentStatus",
    "Outcome",
    "ReplicaStatus",
    "SupplierStatus",
    "WindowSessions",
    "collect_status",
]

_CLAIM_FAILURES = frozenset(
    {SessionState.CLAIM_WINDOW_CLOSED, SessionState.CLAIM_TX_ERROR, SessionState.CLAIM_MISSING}
)
_PROOF_DONE = frozenset(
    {
        SessionState.PROVED,
        SessionState.PROBABILISTIC_PROVED,
        SessionState.PROOF_WINDOW_CLOSED,
        SessionState.PROOF_TX_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    instance: str
    alive: bool  # its heartbeat key exists
    heartbeat_age_seconds: float | None
    suppliers: list[str]  # the leases it holds


@dataclass(frozen=True, slots=True)
class WindowSessions:
    session_start_height: int
    session_end_height: int
    states: dict[str, int]
    relays: int
    compute_units: int


@dataclass(frozen=True, slots=True)
class Outcome:
    session_id: str
    session_end_height: int
    state: str
    result: str  # claims: submitted/skipped/failed; proofs: proved/not required/failed
    tx_hash: str
    settlement_outcome: str | None


@dataclass(frozen=True, slots=True)
class SupplierStatus:
    supplier: str
    owner: str | None  # the replica holding the lease
    lease_ttl_seconds: float | None
    stream_length: int
    pending: int
    lag: int | None
    dead_letters: int
    sessions: int
    current: WindowSessions | None
    previous: WindowSessions | None
    last_claim: Outcome | None
    last_proof: Outcome | None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    height: int
    block_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    namespace: str
    taken_at: float  # unix seconds
    chain: ChainStatus | None
    replicas: list[ReplicaStatus] = field(default_factory=list)
    suppliers: list[SupplierStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        if self.chain is None:
            del doc["chain"]
        return doc


def _claim_outcome(s: SessionSnapshot) -> Outcome:
    if s.state is SessionState.CLAIM_SKIPPED:
        result = "skipped"
    elif s.state in _CLAIM_FAILURES:
        result = "failed"
    else:
        result = "submitted"
    return _outcome(s, result, s.claim_tx_hash)


def _proof_outcome(s: SessionSnapshot) -> Outcome:
    result = {
        SessionState.PROVED: "proved",
        SessionState.PROBABILISTIC_PROVED: "not required",
    }.get(s.state, "failed")
    return _outcome(s, result, s.proof_tx_hash)


def _outcome(s: SessionSnapshot, result: str, tx_hash: str) -> Outcome:
    return Outcome(
        session_id=s.session_id,
        session_end_height=s.session_end_height,
        state=s.state.value,
        result=result,
        tx_hash=tx_hash,
        settlement_outcome=s.settlement_outcome,
    )


def _latest(
    snapshots: Sequence[SessionSnapshot],
    keep: Callable[[SessionSnapshot], bool],
    outcome: Callable[[SessionSnapshot], Outcome],
) -> Outcome | None:
    chosen = [s for s in snapshots if keep(s)]
    if not chosen:
        return None
    return outcome(max(chosen, key=_recency))


def _recency(s: SessionSnapshot) -> tuple[int, float, str]:
    updated = s.last_updated_at.timestamp() if s.last_updated_at is not None else 0.0
    return (s.session_end_height, updated, s.session_id)


def _windows(snapshots: Sequence[SessionSnapshot]) -> list[WindowSessions]:
    """Sessions grouped by end height, the newest window first."""
    by_end: dict[int, list[SessionSnapshot]] = {}
    for s in snapshots:
        by_end.setdefault(s.session_end_height, []).append(s)
    out = []
    for end in sorted(by_end, reverse=True):
        group = by_end[end]
        out.append(
            WindowSessions(
                session_start_height=min(s.session_start_height for s in group),
                session_end_height=end,
                states=dict(sorted(Counter(s.state.value for s in group).items())),
                relays=sum(s.relay_count for s in group),
                compute_units=sum(s.total_compute_units for s in group),
            )
        )
    return out


async def _leases(redis: Redis, kb: KeyBuilder) -> dict[str, tuple[str, float | None]]:
    """supplier -> (owner instance, remaining TTL in seconds) for every lease key."""
    prefix = kb.miner_claim_prefix()
    suppliers: dict[str, str] = {}  # lease key -> supplier
    for key in await _scan(redis, _glob_escape(prefix) + "*"):
        supplier, tail = split_supplier(kb, key[len(prefix) :])
        if supplier and ":" not in supplier and not tail:
            suppliers[key] = supplier
    keys = list(suppliers)
    if not keys:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    out = {}
    for i, key in enumerate(keys):
        token, pttl = replies[2 * i], replies[2 * i + 1]
        if token is None:
            continue  # expired between SCAN and GET
        owner = _text(token).rpartition(":")[0] or _text(token)
        out[suppliers[key]] = (owner, pttl / 1000 if pttl is not None and pttl >= 0 else None)
    return out


async def _replicas(
    redis: Redis, kb: KeyBuilder, leases: dict[str, tuple[str, float | None]], now: float
) -> list[ReplicaStatus]:
    members: set[bytes | str] = await redis.smembers(kb.miner_active_set_key())
    instances = {_text(m) for m in members} | {owner for owner, _ in leases.values()}
    ordered = sorted(instances)
    beats = [await redis.get(kb.miner_instance_key(i)) for i in ordered]
    out = []
    for instance, beat in zip(ordered, beats, strict=True):
        age = None
        if beat is not None:
            try:
                age = max(0.0, now - int(beat) / 1e9)
            except ValueError:
                age = None
        held = sorted(s for s, (owner, _) in leases.items() if owner == instance)
        out.append(ReplicaStatus(instance, beat is not None, age, held))
    return out


async def _chain(redis: Redis, kb: KeyBuilder, now: float) -> ChainStatus | None:
    """The simulated chain's height and block age, when one lives in this Redis (a real node
    is not in Redis: then nothing)."""
    # Lazy: only a deployment on the simulated chain needs its key layout.
    from relayminer.chain.sim.errors import SimChainStateError
    from relayminer.chain.sim.state import BlockRecord, SimChainKeys

    sim = SimChainKeys(kb)
    raw_height = await redis.get(sim.height)
    if raw_height is None:
        return None
    height = int(raw_height)
    raw_block = await redis.hget(sim.blocks, str(height))
    age = None
    if isinstance(raw_block, bytes):
        try:
            age = max(0.0, now - BlockRecord.decode(height, raw_block).time_unix)
        except SimChainStateError:
            age = None
    return ChainStatus(height, age)


async def _supplier(
    redis: Redis, kb: KeyBuilder, supplier: str, lease: tuple[str, float | None] | None
) -> SupplierStatus:
    (stream,) = (await inspect_streams(redis, supplier=supplier, keys=kb))[supplier]
    store = RedisSessionStore(redis, SessionStoreConfig(supplier, kb.miner_sessions_prefix()))
    snapshots = await store.get_by_supplier()
    windows = _windows(snapshots)
    return SupplierStatus(
        supplier=supplier,
        owner=lease[0] if lease else None,
        lease_ttl_seconds=lease[1] if lease else None,
        stream_length=stream.length,
        pending=stream.pending,
        lag=stream.lag,
        dead_letters=stream.dead_letters,
        sessions=len(snapshots),
        current=windows[0] if windows else None,
        previous=windows[1] if len(windows) > 1 else None,
        last_claim=_latest(
            snapshots,
            lambda s: s.state not in (SessionState.ACTIVE, SessionState.CLAIMING),
            _claim_outcome,
        ),
        last_proof=_latest(snapshots, lambda s: s.state in _PROOF_DONE, _proof_outcome),
    )


async def collect_status(
    redis: Redis,
    *,
    keys: KeyBuilder | None = None,
    supplier: str | None = None,
    clock: Callable[[], float] = time.time,
) -> DeploymentStatus:
    """Read the deployment's status (module docstring); ``supplier`` restricts the suppliers."""
    kb = keys or KeyBuilder.for_client(redis)
    now = clock()
    leases = await _leases(redis, kb)
    if supplier is not None:
        suppliers = [supplier]
    else:
        suppliers = sorted(set(await _stream_suppliers(redis, kb, None)) | set(leases))
    return DeploymentStatus(
        namespace=kb.ns.base_prefix,
        taken_at=now,
        chain=await _chain(redis, kb, now),
        replicas=await _replicas(redis, kb, leases, now),
        suppliers=[await _supplier(redis, kb, s, leases.get(s)) for s in suppliers],
    )
