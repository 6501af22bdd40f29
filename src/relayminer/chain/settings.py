"""The ``chain:`` block of the operator configuration: one pydantic model per chain type.

:data:`ChainSettings` is a union discriminated on ``type``; :func:`relayminer.chain.factory.
build_chain` turns a member into a running :class:`~relayminer.chain.base.Chain`. Adding a chain
type is one model here, one member in :data:`ChainSettings` and one builder in the factory.
Nothing here imports an implementation, so the runtime and the configuration stay independent
of the simulator.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relayminer.chain.pocket.settings import PocketChainSettings
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams

__all__ = [
    "ChainSettings",
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


#: Every chain the miner can run against, chosen by ``chain.type``. Add a member here.
#: (:class:`PocketChainSettings` is pure pydantic: importing it imports no chain client.)
ChainSettings = Annotated[SimulatedChainSettings | PocketChainSettings, Field(discriminator="type")]
