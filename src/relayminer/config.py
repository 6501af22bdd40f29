"""Operator configuration of ``relayminer run`` (YAML, validated with pydantic).

Every field has a default except ``suppliers``; unknown fields are errors (a typo must not be
silently ignored). :func:`load_config` raises :class:`ConfigError` whose message names each bad
field and the reason, e.g. ``worker.batch_size: Input should be less than or equal to 5000``.
The documented example is ``miner.example.yaml`` at the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relayminer.chain.factory import ChainSettingsError, check_chain_settings
from relayminer.chain.settings import ChainSettings, SimulatedChainSettings
from relayminer.errors import RelayMinerError
from relayminer.keys import Namespace
from relayminer.lifecycle.config import LifecycleConfig
from relayminer.pipeline.worker import MAX_BATCH_SIZE, WorkerConfig
from relayminer.runtime.redis_url import ClusterSettings, parse_redis_url
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout

#: the ``chain.type`` values (tags of the :data:`ChainSettings` union)
_CHAIN_TYPES = frozenset(
    tag
    for member in get_args(get_args(ChainSettings)[0]) or (get_args(ChainSettings)[0],)
    for tag in get_args(member.model_fields["type"].annotation)
)


class ConfigError(RelayMinerError, ValueError):
    """The configuration is invalid; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSection(_Section):
    #: ``redis://``, ``rediss://``, ``unix://``, ``redis-sentinel://`` or ``redis-cluster://``
    #: (docs/redis-deployments.md); empty: start an embedded server
    url: str | None = Field(None, repr=False)  # may hold a password
    max_connections: int = Field(64, ge=4, le=10_000)
    #: how long a command waits for a free pooled connection before failing
    pool_timeout_seconds: float = Field(30.0, gt=0)
    #: key segments (``Namespace``), each defaulting alone; must match the Go relayers
    namespace: Namespace = Namespace()
    #: run although Redis's ``maxmemory-policy`` may evict keys (an evicted tree or dedup set
    #: loses relays); without it ``relayminer run`` refuses to start on such a server
    allow_eviction: bool = False
    #: after each accounting step, ``WAIT`` until this many replicas hold it (0: off). It bounds
    #: the loss window of a failover; it does not guarantee: see docs/redis-deployments.md
    wait_replicas: int = Field(0, ge=0, le=100)
    #: how long that ``WAIT`` may block before the worker logs, counts and goes on
    wait_timeout_ms: int = Field(1000, ge=1, le=60_000)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if not url:
            return None
        parse_redis_url(url)  # RedisUrlError is a ValueError; it hides passwords
        return url


class WorkerSection(_Section):
    """The relay worker's knobs; defaults are :class:`WorkerConfig`'s (written there once)."""

    batch_size: int = Field(WorkerConfig.batch_size, ge=1, le=MAX_BATCH_SIZE)
    block_ms: int = Field(WorkerConfig.block_ms, ge=1, le=60_000)
    claim_idle_ms: int = Field(WorkerConfig.claim_idle_ms, ge=0)
    max_retries: int = Field(WorkerConfig.max_retries, ge=0)


class SmstSection(_Section):
    """Where session trees live (docs/leaf-journal.md). ``journal`` (default): each session's
    leaves only, trees built at claim time; ``go``: the Go miner's node layout and dedup set,
    for deployments that mix Go and Python miners on the same suppliers."""

    layout: SMSTLayout = DEFAULT_LAYOUT


class LeaseSection(_Section):
    #: a dead owner's suppliers are taken over after at most ttl + renew interval
    ttl_seconds: float = Field(15.0, gt=0)
    renew_seconds: float = Field(3.0, gt=0)

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> LeaseSection:
        if self.renew_seconds * 2 > self.ttl_seconds:
            raise ValueError("renew_seconds must be at most half of ttl_seconds")
        return self


class MetricsSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=0, le=65535)  # 0: pick a free port


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = False


class MinerConfig(_Section):
    #: supplier operator addresses this miner may own (each at most one replica at a time)
    suppliers: list[str] = Field(min_length=1)
    #: replica id (lease owner and consumer name); default miner-<hostname>-<pid>
    instance_id: str | None = None
    session_ttl_seconds: int = Field(7200, ge=60)
    #: dedup sets live this many blocks (x block time) after their last relay; they must
    #: outlive the claim window (the set is the exactly-once gate)
    deduplication_ttl_blocks: int = Field(240, ge=1)
    redis: RedisSection = RedisSection()
    worker: WorkerSection = WorkerSection()
    smst: SmstSection = SmstSection()
    lifecycle: LifecycleConfig = LifecycleConfig()
    leases: LeaseSection = LeaseSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()
    chain: ChainSettings = SimulatedChainSettings()

    @field_validator("suppliers")
    @classmethod
    def _unique(cls, suppliers: list[str]) -> list[str]:
        if any(not s or ":" in s for s in suppliers):
            raise ValueError("supplier addresses must be non-empty and contain no ':'")
        if len(set(suppliers)) != len(suppliers):
            raise ValueError("supplier addresses must be unique")
        return suppliers

    @field_validator("chain", mode="before")
    @classmethod
    def _default_chain_type(cls, value: Any) -> Any:
        """``chain.type`` defaults to ``simulated``, as the union's default member."""
        if isinstance(value, dict) and "type" not in value:
            return {"type": SimulatedChainSettings().type, **value}
        return value

    @model_validator(mode="after")
    def _fits_a_cluster(self) -> MinerConfig:
        """What a Redis Cluster cannot do (docs/redis-deployments.md): the Go node layout
        commits with a hand-rolled ``WATCH``/``MULTI`` on one pooled connection, which a cluster
        client has not (a cluster runs the leaf journal); ``WAIT`` must follow the write on the
        connection of the supplier's master, which the cluster client does not expose."""
        url = self.redis.url
        if not url or not isinstance(parse_redis_url(url), ClusterSettings):
            return self
        if self.smst.layout is SMSTLayout.GO:
            raise ValueError(
                "smst.layout: go is not supported on redis-cluster:// (use journal, the "
                "default; docs/redis-deployments.md)"
            )
        if self.redis.wait_replicas:
            raise ValueError(
                "redis.wait_replicas is not supported on redis-cluster:// (set it to 0; "
                "docs/redis-deployments.md)"
            )
        return self

    @property
    def dedup_ttl_seconds(self) -> int:
        return max(1, int(self.deduplication_ttl_blocks * self.chain.block_time_seconds))


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) > 2 and loc[0] == "chain" and loc[1] in _CHAIN_TYPES:
            del loc[1]  # the union's tag: ``chain.block_time_seconds``, not ``chain.simulated...``
        where = ".".join(str(p) for p in loc) or "<root>"
        lines.append(f"{where}: {e['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse_config(doc: Any) -> MinerConfig:
    """Validate a configuration document (the parsed YAML)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("invalid configuration: the document must be a mapping")
    try:
        return MinerConfig.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None
    except RelayMinerError as err:  # a component rejected a value the schema let through
        raise ConfigError(f"invalid configuration: {err}") from None


def load_config(path: str | Path) -> MinerConfig:
    """Read and validate a YAML configuration file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    config = parse_config(doc)
    try:  # the chain validates what the schema cannot
        check_chain_settings(config.chain, config.suppliers)
    except ChainSettingsError as err:
        raise ConfigError(f"invalid configuration: {err}") from None
    return config
