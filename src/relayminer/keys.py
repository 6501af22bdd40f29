"""Redis key namespace shared with the Go relayers and miners.

Every string built here is a wire contract (``docs/exactly-once.md``; Go: pocket-relay-miner
``transport/redis/keys.go``): the Go relayers write the streams, Go miners may resume sessions and
trees written by this one. Strings are byte-equal to the Go ``KeyBuilder``. Nothing else in the
package formats a key: the session store and the deduplicator build theirs here too (from their
configured prefix, :meth:`KeyBuilder.with_prefixes`).

>>> kb = KeyBuilder()
>>> kb.miner_session_key("sup1", "sess1")
'ha:miner:sessions:sup1:sess1'
>>> KeyBuilder(Namespace(base_prefix="prod")).consumer_group()
'prod-miners'

Redis Cluster variant (:meth:`KeyBuilder.cluster`, chosen by a ``redis-cluster://`` URL through
:meth:`KeyBuilder.for_client`): the supplier's stream stays ``ha:relays:<supplier>`` (the Go
relayers XADD to it unmodified) and every other key of that supplier carries the hash tag
``{ha:relays:<supplier>}`` in place of its supplier segment, so it hashes to the stream's slot and
every script and transaction of a supplier touches one slot (docs/redis-deployments.md).

>>> KeyBuilder.cluster().miner_session_key("sup1", "sess1")
'ha:miner:sessions:{ha:relays:sup1}:sess1'
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from redis.asyncio.cluster import RedisCluster


@dataclass(frozen=True)
class Namespace:
    """The nine configurable key segments; an empty value falls back to its own default."""

    base_prefix: str = "ha"
    cache_prefix: str = "cache"
    events_prefix: str = "events"
    streams_prefix: str = "relays"
    miner_prefix: str = "miner"
    supplier_prefix: str = "supplier"
    meter_prefix: str = "meter"
    params_prefix: str = "params"
    consumer_group_prefix: str = "miners"

    def __post_init__(self) -> None:
        # Field-by-field defaults (Go ``WithDefaults``): no key can hold an empty segment.
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise TypeError(f"Namespace.{f.name} must be a str, got {type(value).__name__}")
            if value == "":
                object.__setattr__(self, f.name, f.default)


class KeyBuilder:
    """Builds every Redis key of the system from a :class:`Namespace`.

    The constructor gives the Go miner's layout, byte for byte; :meth:`cluster` the Redis
    Cluster layout (module docstring), and :meth:`for_client` the one a client needs.
    """

    def __init__(self, namespace: Namespace | None = None) -> None:
        self.ns = namespace if namespace is not None else Namespace()
        #: the Redis Cluster layout (:meth:`cluster`)
        self.hash_tagged = False
        self._b = self.ns.base_prefix
        self._sessions_prefix = f"{self._b}:{self.ns.miner_prefix}:sessions"
        self._dedup_prefix = f"{self._b}:{self.ns.miner_prefix}:dedup"

    def with_prefixes(
        self, *, sessions_prefix: str | None = None, dedup_prefix: str | None = None
    ) -> KeyBuilder:
        """A copy whose session or dedup keys hang under an explicit prefix (the
        ``key_prefix`` of ``SessionStoreConfig`` / ``DeduplicatorConfig``)."""
        copy = KeyBuilder(self.ns)
        copy.hash_tagged = self.hash_tagged
        copy._sessions_prefix = sessions_prefix or self._sessions_prefix
        copy._dedup_prefix = dedup_prefix or self._dedup_prefix
        return copy

    @classmethod
    def cluster(cls, namespace: Namespace | None = None) -> KeyBuilder:
        """The Redis Cluster layout: every key of a supplier but its stream carries the
        supplier's hash tag (module docstring)."""
        kb = cls(namespace)
        kb.hash_tagged = True
        return kb

    @classmethod
    def for_client(cls, redis: object, namespace: Namespace | None = None) -> KeyBuilder:
        """The layout ``redis`` needs: hash-tagged for a Redis Cluster client, the default
        (Go) layout for a single server or a Sentinel-managed master."""
        return cls.cluster(namespace) if isinstance(redis, RedisCluster) else cls(namespace)

    # --- the supplier segment -------------------------------------------------------------
    def supplier_tag(self, supplier: str) -> str:
        """``{ha:relays:<supplier>}``: the hash tag that puts a key in the stream's slot."""
        return f"{{{self.stream_key(supplier)}}}"

    def supplier_segment(self, supplier: str) -> str:
        """What stands for the supplier inside its keys: the address itself, or (cluster
        layout) its hash tag."""
        return self.supplier_tag(supplier) if self.hash_tagged else supplier

    def supplier_of_segment(self, segment: str) -> str | None:
        """The supplier address a key segment stands for (inverse of
        :meth:`supplier_segment`); None when the segment does not fit this layout."""
        if not self.hash_tagged:
            return segment or None
        head, tail = "{" + self.stream_prefix() + ":", "}"
        if segment.startswith(head) and segment.endswith(tail) and len(segment) > len(head) + 1:
            return segment[len(head) : -len(tail)]
        return None

    def _tagged_supplier(self, supplier: str | None, what: str) -> str:
        if supplier is None:
            raise ValueError(f"{what}: the cluster key layout needs the supplier")
        return self.supplier_tag(supplier)

    # --- prefixes -------------------------------------------------------------------------
    def stream_prefix(self) -> str:
        return f"{self._b}:{self.ns.streams_prefix}"

    def consumer_group(self) -> str:
        return f"{self._b}-{self.ns.consumer_group_prefix}"

    def cache_prefix(self) -> str:
        return f"{self._b}:{self.ns.cache_prefix}"

    def miner_sessions_prefix(self) -> str:
        return self._sessions_prefix

    def miner_dedup_prefix(self) -> str:
        return self._dedup_prefix

    def smst_nodes_prefix(self) -> str:
        return f"{self._b}:smst:"

    # --- streams --------------------------------------------------------------------------
    def stream_key(self, supplier: str) -> str:
        """``SupplierStreamName(StreamPrefix(), supplier)``: one stream per supplier."""
        return f"{self.stream_prefix()}:{supplier}"

    def dead_letter_stream_key(self, supplier: str) -> str:
        """Dead-letter stream (not in Go, API.md fix 2)."""
        if self.hash_tagged:
            return f"{self.supplier_tag(supplier)}:dead"
        return f"{self.stream_key(supplier)}:dead"

    def stream_failures_key(self, supplier: str) -> str:
        """HASH entry id -> processing failures caused by that entry (not in Go): what the
        worker's retry cap counts, instead of raw deliveries (``docs/failure-behaviour.md``)."""
        if self.hash_tagged:
            return f"{self.supplier_tag(supplier)}:failures"
        return f"{self.stream_key(supplier)}:failures"

    # --- sessions -------------------------------------------------------------------------
    def miner_supplier_sessions_prefix(self, supplier: str) -> str:
        """``ha:miner:sessions:{supplier}:``: what every session key of the supplier starts
        with (scans)."""
        return f"{self.miner_sessions_prefix()}:{self.supplier_segment(supplier)}:"

    def miner_session_key(self, supplier: str, session_id: str) -> str:
        return f"{self.miner_sessions_prefix()}:{self.supplier_segment(supplier)}:{session_id}"

    def miner_sessions_index_key(self, supplier: str) -> str:
        return f"{self.miner_sessions_prefix()}:{self.supplier_segment(supplier)}:index"

    def miner_session_state_index_prefix(self, supplier: str) -> str:
        """The state index key without its state (scripts append the old state to it)."""
        return f"{self.miner_sessions_prefix()}:{self.supplier_segment(supplier)}:state:"

    def miner_session_state_index_key(self, supplier: str, state: str) -> str:
        return f"{self.miner_session_state_index_prefix(supplier)}{state}"

    def miner_dedup_session_key(self, session_id: str, supplier: str | None = None) -> str:
        """The session's dedup set. The Go layout keys it by session only; the cluster layout
        needs ``supplier`` (its hash tag precedes the session id)."""
        if self.hash_tagged:
            tag = self._tagged_supplier(supplier, "miner_dedup_session_key")
            return f"{self.miner_dedup_prefix()}:session:{tag}:{session_id}"
        return f"{self.miner_dedup_prefix()}:session:{session_id}"

    def miner_state_epoch_key(self, supplier: str | None = None) -> str:
        """STRING (not in Go): a random token written when the namespace's state is first
        seen; a different or missing token while the miner runs means Redis lost its data.
        The cluster layout keeps one per supplier, in the supplier's slot: a master that lost
        its data is noticed by the suppliers it served."""
        if self.hash_tagged:
            tag = self._tagged_supplier(supplier, "miner_state_epoch_key")
            return f"{self._b}:{self.ns.miner_prefix}:epoch:{tag}"
        return f"{self._b}:{self.ns.miner_prefix}:epoch"

    # --- SMST -----------------------------------------------------------------------------
    def smst_supplier_prefix(self, supplier: str) -> str:
        """``ha:smst:{supplier}:``: what every tree key of the supplier starts with."""
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:"

    def smst_nodes_key(self, supplier: str, session_id: str) -> str:
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:nodes"

    def smst_root_key(self, supplier: str, session_id: str) -> str:
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:root"

    def smst_stats_key(self, supplier: str, session_id: str) -> str:
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:stats"

    def smst_leaves_key(self, supplier: str, session_id: str) -> str:
        """The session's leaf journal (``smst.layout: journal``, docs/leaf-journal.md)."""
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:leaves"

    def smst_live_root_key(self, supplier: str, session_id: str) -> str:
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:live_root"

    def smst_nodes_pattern(self) -> str:
        return f"{self._b}:smst:*:*:nodes"

    def smst_session_all_pattern(self, supplier: str, session_id: str) -> str:
        return f"{self._b}:smst:{self.supplier_segment(supplier)}:{session_id}:*"

    # --- HA coordination ------------------------------------------------------------------
    def global_leader_key(self) -> str:
        return f"{self._b}:{self.ns.miner_prefix}:global_leader"

    def miner_claim_prefix(self) -> str:
        """What every lease key starts with (the supplier segment follows)."""
        return f"{self._b}:{self.ns.miner_prefix}:claim:"

    def miner_claim_key(self, supplier: str) -> str:
        return f"{self._b}:{self.ns.miner_prefix}:claim:{self.supplier_segment(supplier)}"

    def miner_active_set_key(self) -> str:
        """The replica registry (cross-supplier). In the cluster layout it and every instance
        heartbeat share the ``{replicas}`` hash tag: a heartbeat writes both in one MULTI."""
        if self.hash_tagged:
            return f"{self._b}:{self.ns.miner_prefix}:{{replicas}}:active"
        return f"{self._b}:{self.ns.miner_prefix}:active"

    def miner_instance_key(self, instance_id: str) -> str:
        if self.hash_tagged:
            return f"{self._b}:{self.ns.miner_prefix}:{{replicas}}:instance:{instance_id}"
        return f"{self._b}:{self.ns.miner_prefix}:instance:{instance_id}"

    # --- chain / lifecycle ----------------------------------------------------------------
    def block_event_channel(self) -> str:
        return f"{self._b}:{self.ns.events_prefix}:blocks"

    def meter_cleanup_channel(self) -> str:
        return f"{self._b}:{self.ns.meter_prefix}:cleanup"

    def tx_track_key(self, supplier: str, session_end_height: int, session_id: str) -> str:
        segment = self.supplier_segment(supplier)
        return f"{self._b}:tx:track:{segment}:{session_end_height}:{session_id}"

    def rebroadcast_key(self, phase: str, supplier: str, session_end_height: int) -> str:
        # Go layout: the phase sits in literal braces (Go's hash tag). Its writes also check the
        # supplier's lease key, another slot: the cluster layout tags the supplier instead.
        base = f"{self._b}:{self.ns.miner_prefix}:rebroadcast"
        if self.hash_tagged:
            return f"{base}:{phase}:{self.supplier_tag(supplier)}:{session_end_height}"
        return f"{base}:{{{phase}}}:{supplier}:{session_end_height}"

    def rebroadcast_index_key(self, phase: str, supplier: str | None = None) -> str:
        """The phase's index of ``supplier:E`` groups: one for every supplier in the Go layout,
        one per supplier (in its slot) in the cluster layout, which needs ``supplier``."""
        base = f"{self._b}:{self.ns.miner_prefix}:rebroadcast"
        if self.hash_tagged:
            tag = self._tagged_supplier(supplier, "rebroadcast_index_key")
            return f"{base}:{phase}:{tag}:index"
        return f"{base}:{{{phase}}}:index"

    def all_keys_pattern(self) -> str:
        return f"{self._b}:*"
