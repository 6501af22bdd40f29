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
    #: inclusion reconciler: resends of a claim/proof that failed at execution or was not
    #: included by its deadline (0: observe only)
    max_rebroadcasts: int = Field(3, ge=0)
    #: blocks a broadcast the mempool accepted gets to appear in a block before it is resent
    inclusion_deadline_blocks: int = Field(2, ge=1)
    rebroadcast_safety_blocks: int = Field(1, ge=0)
    rebroadcast_ttl_seconds: int = Field(3600, ge=1)
    #: closest proofs checked against a tree's root before it is claimed (its completeness)
    tree_check_samples: int = Field(16, ge=0, le=256)
    #: lifecycle priority: relay workers wait between batches while lifecycle passes run, for
    #: at most this long per batch (0: no priority; ``relayminer.runtime.priority``)
    max_mining_pause_seconds: float = Field(2.0, ge=0)
    #: lifecycle passes (one per owned supplier and block) running at once; the rest queue
    max_concurrent_passes: int = Field(32, ge=1)
    #: worker processes that build session trees (journal layout) off the event loop, shared by
    #: every owned supplier (``relayminer.runtime.tree_builder``; docs/lifecycle.md, "Tree
    #: builds in worker processes"); 0 builds them in the event loop
    tree_build_processes: int = Field(0, ge=0, le=64)
    #: a claim group waits (one block at most) while the relay stream still holds entries
    #: published before its grace period ended (``relayminer.lifecycle.backlog``). Off by
    #: default: on a saturated replica the deferral pushes claims towards the end of their
    #: window, and a missed window costs every relay of the session (docs/lifecycle.md)
    claim_waits_for_stream: bool = False
    #: a quiet block (nothing due) re-reads the live session ids at least this often, for
    #: sessions written by another process (``relayminer.lifecycle.manager``, "Quiet blocks")
    quiet_recheck_blocks: int = Field(10, ge=1)
    #: how long one wait for the next block may take before the loop checks ``stop`` again
    block_wait_timeout_seconds: float = Field(5.0, gt=0)


@dataclass
class PassReport:
    """What one pass did (tests and the demo read it)."""

    height: int
    #: a quiet pass: nothing was due, no snapshot was read (``LifecycleManager.tick``)
    quiet: bool = False
    claimed: list[str] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, SessionState] = field(default_factory=dict)
    resent: list[str] = field(default_factory=list)
    #: sessions whose claim or proof tx was found in a block with a non-zero code
    failed_at_execution: list[str] = field(default_factory=list)
    #: (phase, blocks from its window opening to this broadcast) of each claim/proof sent
    delays: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
