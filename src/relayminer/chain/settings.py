"""The ``chain:`` block of the operator configuration: one pydantic model per chain type.

:data:`ChainSettings` is a union discriminated on ``type``; :func:`relayminer.chain.factory.
build_chain` turns a member into a running :class:`~relayminer.chain.base.Chain`. Adding a chain
type is one model here, one member in :data:`ChainSettings` and one builder in the factory.
Nothing here imports an implementation, so the runtime and the configuration stay independent
of the simulator.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams

__all__ = [
    "ChainSettings",
    "KeySources",
    "KeyringSettings",
    "MnemonicSettings",
    "PocketChainSettings",
    "ProofParamsSection",
    "ServiceSection",
    "SharedParamsSection",
    "SimulatedChainSettings",
]


_SHARED = SharedParams()  # the protocol's defaults, written once in their dataclasses
_PROOF = ProofParams()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    """poktroll ``x/shared`` params of the simulated chain (sessions of 4 blocks by default, a
    short session for demos; the protocol's own defaults are :class:`SharedParams`)."""

    num_blocks_per_session: int = Field(4, ge=1)
    grace_period_end_offset_blocks: int = Field(_SHARED.grace_period_end_offset_blocks, ge=0)
    claim_window_open_offset_blocks: int = Field(_SHARED.claim_window_open_offset_blocks, ge=0)
    claim_window_close_offset_blocks: int = Field(_SHARED.claim_window_close_offset_blocks, ge=0)
    proof_window_open_offset_blocks: int = Field(_SHARED.proof_window_open_offset_blocks, ge=0)
    proof_window_close_offset_blocks: int = Field(_SHARED.proof_window_close_offset_blocks, ge=0)
    compute_units_to_tokens_multiplier: int = Field(
        _SHARED.compute_units_to_tokens_multiplier, ge=1
    )
    compute_unit_cost_granularity: int = Field(_SHARED.compute_unit_cost_granularity, ge=1)

    def params(self) -> SharedParams:
        return SharedParams(**self.model_dump())


class ProofParamsSection(_Section):
    """poktroll ``x/proof`` params of the simulated chain."""

    proof_request_probability: float = Field(_PROOF.proof_request_probability, ge=0, le=1)
    proof_requirement_threshold_upokt: int = Field(_PROOF.proof_requirement_threshold_upokt, ge=0)
    proof_missing_penalty_upokt: int = Field(_PROOF.proof_missing_penalty_upokt, ge=0)
    proof_submission_fee_upokt: int = Field(_PROOF.proof_submission_fee_upokt, ge=0)

    def params(self) -> ProofParams:
        return ProofParams(**self.model_dump())


class SimulatedChainSettings(_Section):
    """The simulated chain (a development tool): its state lives in Redis, so every replica
    sharing the Redis shares the chain."""

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
    #: share of accepted txs the simulated mempool silently drops (exercises resends)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _known_services(self) -> SimulatedChainSettings:
        for table, members in (("applications", self.applications), ("suppliers", self.suppliers)):
            for address, service_ids in members.items():
                unknown = sorted(set(service_ids) - set(self.services))
                if unknown:
                    raise ValueError(
                        f"{table}[{address!r}] names unknown service id(s) {', '.join(unknown)}"
                    )
        return self


# --- chain.type: pocket (relayminer.chain.pocket; docs/pocket-chain.md) -------------------
# Secrets never appear in the config text: the mnemonic comes from an environment variable name
# or a file path, private keys from a keys file or a keyring directory.
class MnemonicSettings(_Section):
    env: str | None = None  # name of the environment variable holding the phrase
    file: Path | None = None  # or a file holding it
    account: int = Field(default=0, ge=0, lt=2**31)
    count: int = Field(default=1, ge=1, le=1000)  # keys m/44'/118'/account'/0/0..count-1

    @model_validator(mode="after")
    def _one_source(self) -> MnemonicSettings:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of mnemonic.env or mnemonic.file")
        return self


class KeyringSettings(_Section):
    backend: Literal["test"] = "test"
    dir: Path  # keyring home; keys live in <dir>/keyring-test
    app_name: str = "pocket"
    names: tuple[str, ...] = ()  # empty: every key


class KeySources(_Section):
    keys_file: Path | None = None
    mnemonic: MnemonicSettings | None = None
    keyring: KeyringSettings | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> KeySources:
        if self.keys_file is None and self.mnemonic is None and self.keyring is None:
            raise ValueError("configure at least one of keys_file, mnemonic, keyring")
        return self


class PocketChainSettings(_Section):
    type: Literal["pocket"] = "pocket"
    chain_id: str = Field(default="pocket", min_length=1)  # "pocket-beta" for testnet
    grpc_endpoints: tuple[str, ...] = Field(default=("localhost:9090",), min_length=1)
    grpc_tls: bool = False
    rpc_url: str = "http://localhost:26657"
    query_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    gas_adjustment: Decimal = Field(default=Decimal("1.7"), gt=0)
    gas_price_upokt: Decimal = Field(default=Decimal("0.00001"), ge=0)
    gas_limit: int = Field(default=0, ge=0)  # > 0: fixed, no simulation
    max_fee_upokt: int | None = Field(default=None, ge=0)
    memo: str = Field(default="", max_length=256)
    unordered: bool = True
    unordered_ttl_seconds: float = Field(default=120.0, gt=0, lt=600)
    reconnect_backoff_max_seconds: float = Field(default=15.0, gt=0)
    #: the network's expected block time: sizes the dedup TTL (``deduplication_ttl_blocks``
    #: blocks) and the stale-node warning (no new block for several block times)
    block_time_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: how long ``relayminer run`` keeps retrying an unreachable node at start before it
    #: exits 1 (once running, outages are retried without limit)
    start_timeout_seconds: float = Field(default=60.0, ge=0, le=3600)
    keys: KeySources


#: Every chain the miner can run against, chosen by ``chain.type``. Add a member here.
ChainSettings = Annotated[SimulatedChainSettings | PocketChainSettings, Field(discriminator="type")]
