"""Operator configuration of ``relayminer run`` (YAML, validated with pydantic).

Every field has a default except ``suppliers``; unknown fields are errors (a typo must not be
silently ignored). :func:`load_config` raises :class:`ConfigError` whose message names each bad
field and the reason, e.g. ``worker.batch_size: Input should be less than or equal to 5000``.
The documented example is ``miner.example.yaml`` at the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.errors import RelayMinerError
from relayminer.keys import Namespace
from relayminer.lifecycle.manager import LifecycleConfig
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams
from relayminer.runtime.connections import cluster_refusal
from relayminer.runtime.redis_url import ClusterSettings, parse_redis_url


class ConfigError(RelayMinerError, ValueError):
    """The configuration is invalid; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSection(_Section):
    #: ``redis://``, ``rediss://``, ``unix://`` or ``redis-sentinel://``
    #: (docs/redis-deployments.md); empty: start an embedded server
    url: str | None = Field(None, repr=False)  # may hold a password
    max_connections: int = Field(64, ge=4, le=10_000)
    #: how long a command waits for a free pooled connection before failing
    pool_timeout_seconds: float = Field(30.0, gt=0)
    #: key segments (``Namespace``), each defaulting alone; must match the Go relayers
    namespace: Namespace = Namespace()

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if not url:
            return None
        settings = parse_redis_url(url)  # RedisUrlError is a ValueError; it hides passwords
        if isinstance(settings, ClusterSettings):
            raise ValueError(cluster_refusal(settings))
        return url


class WorkerSection(_Section):
    batch_size: int = Field(1000, ge=1, le=5000)
    block_ms: int = Field(1000, ge=1, le=60_000)
    claim_idle_ms: int = Field(30_000, ge=0)
    max_retries: int = Field(3, ge=0)


class LifecycleSection(_Section):
    submit_safety_blocks: int = Field(1, ge=0)
    max_submit_attempts: int = Field(3, ge=1)
    min_claim_reward_upokt: int = Field(2, ge=0)
    pre_proof_claim_check: bool = True
    batch_claims: bool = True
    batch_proofs: bool = True
    max_rebroadcasts: int = Field(1, ge=0)
    rebroadcast_safety_blocks: int = Field(1, ge=0)

    def build(self) -> LifecycleConfig:
        return LifecycleConfig(**self.model_dump())


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


class ServiceSection(_Section):
    compute_units_per_relay: int = Field(1, ge=1)
    #: hex of the 32-byte relay difficulty target; 64 x 'f' is the base difficulty
    relay_difficulty_target_hex: str = BASE_RELAY_DIFFICULTY_TARGET_HASH.hex()

    @field_validator("relay_difficulty_target_hex")
    @classmethod
    def _target(cls, value: str) -> str:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError("must be hex") from None
        if len(raw) != 32:
            raise ValueError("must be 32 bytes (64 hex digits)")
        return value.lower()


class SharedParamsSection(_Section):
    num_blocks_per_session: int = Field(4, ge=1)
    grace_period_end_offset_blocks: int = Field(1, ge=0)
    claim_window_open_offset_blocks: int = Field(1, ge=0)
    claim_window_close_offset_blocks: int = Field(4, ge=0)
    proof_window_open_offset_blocks: int = Field(0, ge=0)
    proof_window_close_offset_blocks: int = Field(4, ge=0)
    compute_units_to_tokens_multiplier: int = Field(42_000_000, ge=1)
    compute_unit_cost_granularity: int = Field(1_000_000, ge=1)


class ProofParamsSection(_Section):
    proof_request_probability: float = Field(0.25, ge=0, le=1)
    proof_requirement_threshold_upokt: int = Field(20_000_000, ge=0)
    proof_missing_penalty_upokt: int = Field(320_000_000, ge=0)
    proof_submission_fee_upokt: int = Field(0, ge=0)


class ChainSection(_Section):
    """The chain. Only ``simulated`` exists today (behind the ``Chain`` interface); its state
    lives in Redis, so every replica sharing the Redis shares the chain."""

    type: Literal["simulated"] = "simulated"
    #: whether this process may produce blocks (one producer at a time, lease-guarded)
    produce_blocks: bool = True
    block_time_seconds: float = Field(1.0, gt=0)
    shared_params: SharedParamsSection = SharedParamsSection()
    proof_params: ProofParamsSection = ProofParamsSection()
    services: dict[str, ServiceSection] = Field(
        default_factory=lambda: {"anvil": ServiceSection(compute_units_per_relay=10)}
    )
    #: application address -> service ids it is staked for
    applications: dict[str, list[str]] = Field(default_factory=lambda: {"pokt1app": ["anvil"]})
    #: supplier operator address -> service ids; defaults to every miner supplier on every
    #: service when empty
    suppliers: dict[str, list[str]] = Field(default_factory=dict)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    seed: int = 0

    def build(self, miner_suppliers: list[str]) -> SimChainConfig:
        suppliers = self.suppliers or {s: list(self.services) for s in miner_suppliers}
        return SimChainConfig(
            block_time_seconds=self.block_time_seconds,
            shared_params=SharedParams(**self.shared_params.model_dump()),
            proof_params=ProofParams(**self.proof_params.model_dump()),
            services={
                sid: ServiceConfig(
                    compute_units_per_relay=svc.compute_units_per_relay,
                    relay_difficulty_target=bytes.fromhex(svc.relay_difficulty_target_hex),
                )
                for sid, svc in self.services.items()
            },
            applications={a: tuple(s) for a, s in self.applications.items()},
            suppliers={s: tuple(v) for s, v in suppliers.items()},
            drop_rate=self.drop_rate,
            seed=self.seed,
        )


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
    lifecycle: LifecycleSection = LifecycleSection()
    leases: LeaseSection = LeaseSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()
    chain: ChainSection = ChainSection()

    @field_validator("suppliers")
    @classmethod
    def _unique(cls, suppliers: list[str]) -> list[str]:
        if any(not s or ":" in s for s in suppliers):
            raise ValueError("supplier addresses must be non-empty and contain no ':'")
        if len(set(suppliers)) != len(suppliers):
            raise ValueError("supplier addresses must be unique")
        return suppliers

    @property
    def dedup_ttl_seconds(self) -> int:
        return max(1, int(self.deduplication_ttl_blocks * self.chain.block_time_seconds))


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
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
    try:  # the simulated chain validates what the schema cannot (service references ...)
        config.chain.build(config.suppliers)
    except RelayMinerError as err:
        raise ConfigError(f"invalid configuration: chain: {err}") from None
    return config
