"""Settings of the session lifecycle, validated once (pydantic) and used as they are.

The operator's YAML ``lifecycle:`` section *is* this model (``relayminer.config``), so every
default is written here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from relayminer.sessions.model import SessionState

__all__ = ["LifecycleConfig", "PassReport"]


class LifecycleConfig(BaseModel):
    """How the lifecycle submits claims and proofs."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: blocks of slack kept before a window closes when submitting (mempool delay)
    submit_safety_blocks: int = Field(1, ge=0)
    #: rejected broadcasts of one session (retryable reasons) before claim/proof_tx_error
    max_submit_attempts: int = Field(3, ge=1)
    #: a claim is skipped as unprofitable unless its reward exceeds this (the estimated fees of
    #: a claim and a proof; the Go miner's floor is 1 uPOKT per tx)
    min_claim_reward_upokt: int = Field(2, ge=0)
    #: the GetClaim guard before proving
    pre_proof_claim_check: bool = True
    #: one tx per session end height (False: one tx per session)
    batch_claims: bool = True
    batch_proofs: bool = True
    #: inclusion reconciler: resends of a claim/proof the chain did not include (0: observe)
    max_rebroadcasts: int = Field(1, ge=0)
    rebroadcast_safety_blocks: int = Field(1, ge=0)
    rebroadcast_ttl_seconds: int = Field(3600, ge=1)
    #: closest proofs checked against a tree's root before it is claimed (its completeness)
    tree_check_samples: int = Field(16, ge=0, le=256)
    #: how long one wait for the next block may take before the loop checks ``stop`` again
    block_wait_timeout_seconds: float = Field(5.0, gt=0)


@dataclass
class PassReport:
    """What one pass did (tests and the demo read it)."""

    height: int
    claimed: list[str] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, SessionState] = field(default_factory=dict)
    resent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
