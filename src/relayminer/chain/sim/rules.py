"""The simulated chain's message handlers, proof EndBlocker and settlement (one block's rules).

Every function works on a
:class:`~relayminer.chain.sim.state.StateView` at a given block height and stages its writes
there; ``simchain.py`` decides which view is committed (DeliverTx) or thrown away (CheckTx).

What is checked where:

Errors are reported as a node reports them (:class:`~relayminer.chain.sim.errors.TxRejectedError`):
``ValidateBasic`` failures with their registered ``proof`` code (1101 address, 1104 root, 1108
empty proof, 1115 header); handler failures as code 1, codespace ``undefined``, with
poktroll's text ("claim attempted outside of the session's claim window: ...").

- **MsgCreateClaim** (CheckTx and DeliverTx): well-formed (ValidateBasic); known supplier;
  header equals the on-chain session (all five fields) and the supplier is in it; root is 48
  bytes with count > 0 and sum > 0; ``earliest_claim_commit <= height <= claim_close``
  (FailedPrecondition, 1121); ``sum == count * compute_units_per_relay`` (1126). Claims are
  upserts keyed by (supplier, session id): ``EventClaimCreated`` / ``EventClaimUpdated``; an
  upsert resets the proof status.
- **MsgSubmitProof** (CheckTx and DeliverTx): same supplier/session checks; non-empty proof
  bytes (1108); proof window (1122); bytes that decode as a compact closest proof; the claim
  exists ("claim not found", 1106); the supplier can pay ``proof_submission_fee`` (1127); the
  claim requires a proof ("proof not required", 1129). The proof is staged for the EndBlocker:
  ``EventProofSubmitted`` / ``EventProofUpdated`` (a second proof for the claim in one block).
- **Proof EndBlocker** (:func:`validate_proof`): decompact; path equals
  ``proof_path(hash of block proof_seed_height, session id)``; the closest leaf value decodes as
  a ``Relay`` whose request and response metadata carry the claim's session header and whose
  request names the supplier; ``SHA-256(relay bytes) < relay difficulty target``; the closest
  proof verifies against the claim root. The claim becomes VALIDATED or INVALID.
  Unlike poktroll, the relay checks run here (→ INVALID) rather than at submission (→ rejected
  tx); the claim ends expired either way.
- **Settlement** (:func:`settle_claim`, block ``proof_close``): the requirement decision is
  re-run on the stored claim with the proof status unset; required & VALIDATED or not required
  → settle (mint=burn, :func:`distribute`); required & PENDING → expire ``PROOF_MISSING``;
  required & INVALID → expire ``PROOF_INVALID``; both slash ``proof_missing_penalty``.

Not simulated: application ring signatures and supplier signatures (never checked), params
history and governance (every param is constant), relay difficulty updates (the target stays
the configured one), revenue shares (the operator is the owner and gets the whole supplier
share), the global-inflation TLM, gas and tx fees other than ``proof_submission_fee``. The
application overservicing budget is reduced to "never burn more than the application's
remaining stake" (excess trimmed, ``EventApplicationOverserviced``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction

from google.protobuf.message import DecodeError

from relayminer.chain.base import (
    ChainEvent,
    Claim,
    Msg,
    MsgCreateClaim,
    MsgSubmitProof,
    SessionHeader,
)
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig, TokenomicsConfig
from relayminer.chain.sim.errors import SimSessionError, TxRejectedError
from relayminer.chain.sim.sessions import session_for
from relayminer.chain.sim.state import StateView
from relayminer.proto import poktroll_pb2
from relayminer.protocol.proof_requirement import (
    SMST_ROOT_SIZE,
    ProofRequirementReason,
    claimed_upokt,
    estimated_compute_units,
    num_estimated_relays,
    parse_claim_root,
    proof_requirement,
)
from relayminer.protocol.relay_difficulty import is_relay_volume_applicable
from relayminer.protocol.windows import (
    claim_window_close_height,
    earliest_claim_commit_height,
    earliest_proof_commit_height,
    proof_seed_height,
    proof_window_close_height,
    session_end_to_proof_close_blocks,
    settlement_height,
)
from relayminer.smst.nodes import SMSTError
from relayminer.smst.proof import CompactClosestProof, proof_path, verify_closest_proof

__all__ = [
    "BlockContext",
    "Distribution",
    "distribute",
    "execute_msg",
    "proof_requirement_for",
    "run_proof_end_blocker",
    "settle_claims",
    "validate_proof",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlockContext:
    """Where messages execute: the block ``height`` (H+1 for CheckTx) and committed hashes."""

    config: SimChainConfig
    height: int
    block_hash: Callable[[int], Awaitable[bytes]]  # hash of a committed block


def _header_text(h: SessionHeader) -> str:
    return (
        f"{{app={h.application_address} service={h.service_id} session={h.session_id} "
        f"start={h.session_start_block_height} end={h.session_end_block_height}}}"
    )


def _service(ctx: BlockContext, service_id: str) -> ServiceConfig:
    svc = ctx.config.services.get(service_id)
    if svc is None:
        raise TxRejectedError.handler("NotFound", f"service not found: {service_id!r}")
    return svc


def _validate_basic(supplier: str, header: SessionHeader) -> None:
    """The stateless checks of both messages' ``ValidateBasic`` (registered ``proof`` codes,
    reported by CheckTx): a supplier address (1101) and a well-formed header (1115)."""
    if not supplier or any(c.isspace() for c in supplier):
        raise TxRejectedError.stateless(1101, f"invalid address: supplier {supplier!r}")
    problem = None
    if not header.application_address:
        problem = "empty application address"
    elif not header.service_id:
        problem = "empty service id"
    elif not header.session_id:
        problem = "empty session id"
    elif header.session_start_block_height < 1:
        problem = f"invalid session start height {header.session_start_block_height}"
    elif header.session_end_block_height < header.session_start_block_height:
        problem = (
            f"session end height {header.session_end_block_height} is before its start "
            f"height {header.session_start_block_height}"
        )
    if problem is not None:
        raise TxRejectedError.stateless(1115, f"invalid session header: {problem}")


def _check_supplier_session(ctx: BlockContext, supplier: str, header: SessionHeader) -> None:
    """Known supplier; header equals the on-chain session; supplier in the session (handler
    checks: gRPC InvalidArgument, poktroll 1102 "supplier not found" and 1116 "invalid
    session ID")."""
    if supplier not in ctx.config.suppliers:
        raise TxRejectedError.handler(
            "InvalidArgument", f"supplier not found: unknown supplier {supplier!r}"
        )
    try:
        session = session_for(
            ctx.config,
            header.application_address,
            header.service_id,
            header.session_start_block_height,
        )
    except SimSessionError as err:
        raise TxRejectedError.handler(
            "InvalidArgument", f"invalid session ID: session not found: {err}"
        ) from err
    if session.header != header:
        raise TxRejectedError.handler(
            "InvalidArgument",
            f"invalid session ID: session header mismatch: got {_header_text(header)}, "
            f"on-chain session is {_header_text(session.header)}",
        )
    if supplier not in session.suppliers:
        raise TxRejectedError.handler(
            "InvalidArgument",
            f"supplier not found: supplier {supplier!r} not in session {header.session_id} "
            f"(suppliers: {', '.join(session.suppliers) or 'none'})",
        )


def _unproven(claim: Claim) -> Claim:
    """The claim with its proof status unset (what the requirement decision hashes)."""
    copy = Claim()
    copy.CopyFrom(claim)
    copy.proof_validation_status = poktroll_pb2.PENDING_VALIDATION
    return copy


async def proof_requirement_for(ctx: BlockContext, claim: Claim) -> ProofRequirementReason:
    """The chain's requirement decision for a stored claim (status unset; poktroll
    ``x/proof/keeper/proof_requirement.go``)."""
    cfg = ctx.config
    header = claim.session_header
    seed_hash = await ctx.block_hash(
        proof_seed_height(cfg.shared_params, header.session_end_block_height)
    )
    return proof_requirement(
        _unproven(claim),
        cfg.proof_params,
        cfg.shared_params,
        _service(ctx, header.service_id).relay_difficulty_target,
        seed_hash,
    )


def _require_window(ctx: BlockContext, phase: str, earliest: int, close: int, end: int) -> None:
    """The tx lands at ``ctx.height``: inside ``[earliest, close]`` (inclusive), or the handler
    fails with poktroll's FailedPrecondition 1121/1122 text ("claim attempted outside of the
    session's claim window: ...")."""
    if not earliest <= ctx.height <= close:
        raise TxRejectedError.handler(
            "FailedPrecondition",
            f"{phase} attempted outside of the session's {phase} window: current block "
            f"height ({ctx.height}) is outside [{earliest}, {close}] for the session ending "
            f"at {end}",
        )


def _claim_attributes(ctx: BlockContext, claim: Claim) -> dict[str, str]:
    h = claim.session_header
    root = parse_claim_root(claim.root_hash)
    target = _service(ctx, h.service_id).relay_difficulty_target
    return {
        "supplier_operator_address": claim.supplier_operator_address,
        "application_address": h.application_address,
        "service_id": h.service_id,
        "session_id": h.session_id,
        "session_end_block_height": str(h.session_end_block_height),
        "num_relays": str(root.count),
        "claimed_compute_units": str(root.sum),
        "estimated_compute_units": str(math.floor(estimated_compute_units(root.sum, target))),
        "num_estimated_relays": str(num_estimated_relays(root.count, root.sum, target)),
        "claimed_upokt": str(claimed_upokt(root.sum, ctx.config.shared_params, target)),
    }


# --- message handlers -------------------------------------------------------------------------


async def _create_claim(ctx: BlockContext, view: StateView, msg: MsgCreateClaim) -> ChainEvent:
    supplier = msg.supplier_operator_address
    header = msg.session_header
    _validate_basic(supplier, header)
    root_hash = msg.root_hash
    if len(root_hash) != SMST_ROOT_SIZE:
        raise TxRejectedError.stateless(
            1104,
            f"invalid root hash: root hash must be {SMST_ROOT_SIZE} bytes, got {len(root_hash)}",
        )
    root = parse_claim_root(root_hash)
    if root.count == 0:
        raise TxRejectedError.stateless(1104, "invalid root hash: root hash has a zero relay count")
    if root.sum == 0:
        raise TxRejectedError.stateless(1104, "invalid root hash: root hash has zero compute units")
    _check_supplier_session(ctx, supplier, header)
    p = ctx.config.shared_params
    end = header.session_end_block_height
    _require_window(
        ctx,
        "claim",
        earliest_claim_commit_height(p, end, supplier),
        claim_window_close_height(p, end),
        end,
    )
    cupr = _service(ctx, header.service_id).compute_units_per_relay
    if root.sum != root.count * cupr:
        raise TxRejectedError.handler(
            "InvalidArgument",
            "mismatch: claim compute units != number of relays * service compute units per "
            f"relay: root claims {root.sum} compute units for {root.count} relays, want "
            f"relays x compute_units_per_relay ({cupr}) = {root.count * cupr}",
        )
    existing = await view.get_claim(supplier, header.session_id)
    claim = Claim(supplier_operator_address=supplier, root_hash=root_hash)
    claim.session_header.CopyFrom(header)
    view.put_claim(claim)
    view.count("claims_updated" if existing is not None else "claims_created")
    kind = "EventClaimUpdated" if existing is not None else "EventClaimCreated"
    return ChainEvent(ctx.height, kind, _claim_attributes(ctx, claim))


async def _submit_proof(ctx: BlockContext, view: StateView, msg: MsgSubmitProof) -> ChainEvent:
    supplier = msg.supplier_operator_address
    header = msg.session_header
    _validate_basic(supplier, header)
    if not msg.proof:
        raise TxRejectedError.stateless(1108, "invalid proof: proof is empty")
    _check_supplier_session(ctx, supplier, header)
    p = ctx.config.shared_params
    end = header.session_end_block_height
    _require_window(
        ctx,
        "proof",
        earliest_proof_commit_height(p, end, supplier),
        proof_window_close_height(p, end),
        end,
    )
    try:
        CompactClosestProof.from_bytes(msg.proof)
    except (SMSTError, ValueError, TypeError) as err:
        raise TxRejectedError.handler(
            "InvalidArgument", f"invalid proof: failed to decode proof: {err}"
        ) from err
    claim = await view.get_claim(supplier, header.session_id)
    if claim is None:
        raise TxRejectedError.handler(
            "FailedPrecondition",
            f"claim not found: for session {header.session_id} and supplier {supplier}",
        )
    fee = ctx.config.proof_params.proof_submission_fee_upokt
    if fee:
        balance = await view.balance(supplier)
        if balance < fee:
            raise TxRejectedError.handler(
                "FailedPrecondition",
                f"not enough funds to submit proof: insufficient balance: supplier {supplier} "
                f"has {balance} uPOKT, proof submission fee is {fee} uPOKT",
            )
        view.add_balance(supplier, -fee)
    requirement = await proof_requirement_for(ctx, claim)
    if not requirement.is_required:
        raise TxRejectedError.handler(
            "FailedPrecondition",
            f"proof not required: claim of session {header.session_id} "
            f"(supplier {supplier}): requirement {requirement.name}",
        )
    updated = view.has_pending_proof(supplier, header.session_id)
    view.put_proof(msg)
    view.count("proofs_submitted")
    attributes = _claim_attributes(ctx, claim)
    attributes["proof_requirement"] = requirement.name
    return ChainEvent(
        ctx.height, "EventProofUpdated" if updated else "EventProofSubmitted", attributes
    )


async def execute_msg(ctx: BlockContext, view: StateView, msg: Msg) -> ChainEvent:
    """Check one message at ``ctx.height`` and stage its effects in ``view``.

    Raises :class:`TxRejectedError` (nothing staged by this message is meaningful then: run
    each tx in a child view and drop it on error).
    """
    if isinstance(msg, MsgCreateClaim):
        return await _create_claim(ctx, view, msg)
    if isinstance(msg, MsgSubmitProof):
        return await _submit_proof(ctx, view, msg)
    raise TxRejectedError(
        f"unknown request: unsupported message type {type(msg).__name__}", codespace="sdk", code=6
    )


# --- proof EndBlocker -------------------------------------------------------------------------


async def validate_proof(ctx: BlockContext, claim: Claim, msg: MsgSubmitProof) -> str | None:
    """Why the proof is invalid for the claim, or None when it is valid (module docstring)."""
    header = claim.session_header
    try:
        proof = CompactClosestProof.from_bytes(msg.proof).decompact()
    except (SMSTError, ValueError, TypeError) as err:
        return f"failed to decode proof: {err}"
    seed_hash = await ctx.block_hash(
        proof_seed_height(ctx.config.shared_params, header.session_end_block_height)
    )
    expected_path = proof_path(seed_hash, header.session_id)
    if proof.path != expected_path:
        return f"proof path {proof.path.hex()} != expected path {expected_path.hex()}"
    relay_bytes = proof.closest_value
    if not relay_bytes:
        return "closest leaf holds no relay"
    try:
        relay = poktroll_pb2.Relay.FromString(relay_bytes)
    except DecodeError as err:
        return f"closest leaf value is not a Relay: {err}"
    if not relay.HasField("req") or not relay.HasField("res"):
        return "relay lacks a request or a response"
    if relay.req.meta.session_header != header:
        return "relay request session header differs from the claim's session header"
    if relay.res.meta.session_header != header:
        return "relay response session header differs from the claim's session header"
    if relay.req.meta.supplier_operator_address != claim.supplier_operator_address:
        return (
            f"relay request supplier {relay.req.meta.supplier_operator_address!r} is not the "
            f"claim's supplier {claim.supplier_operator_address!r}"
        )
    target = _service(ctx, header.service_id).relay_difficulty_target
    relay_hash = hashlib.sha256(relay_bytes).digest()
    if not is_relay_volume_applicable(relay_hash, target):
        return f"relay hash {relay_hash.hex()} does not meet the difficulty target {target.hex()}"
    if not verify_closest_proof(proof, claim.root_hash):
        return "closest proof does not verify against the claim root"
    return None


async def run_proof_end_blocker(ctx: BlockContext, view: StateView) -> list[ChainEvent]:
    """Validate every proof delivered in this block, set the claims' status, drop the proofs."""
    events: list[ChainEvent] = []
    for msg in view.take_proofs():
        supplier = msg.supplier_operator_address
        sid = msg.session_header.session_id
        claim = await view.get_claim(supplier, sid)
        if claim is None:  # cannot happen: the handler checked it in this block
            continue
        reason = await validate_proof(ctx, claim, msg)
        updated = Claim()
        updated.CopyFrom(claim)
        if reason is None:
            updated.proof_validation_status = poktroll_pb2.VALIDATED
            view.count("proofs_validated")
        else:
            updated.proof_validation_status = poktroll_pb2.INVALID
            view.count("proofs_invalid")
            log.warning(
                "simulated chain: invalid proof",
                extra={"supplier": supplier, "session_id": sid, "reason": reason},
            )
        view.put_claim(updated)
        events.append(
            ChainEvent(
                ctx.height,
                "EventProofValidityChecked",
                {
                    "supplier_operator_address": supplier,
                    "session_id": sid,
                    "proof_validation_status": poktroll_pb2.ClaimProofStatus.Name(
                        updated.proof_validation_status
                    ),
                    "failure_reason": reason or "",
                },
            )
        )
    return events


# --- settlement -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Distribution:
    """How a settled amount is minted and shared (uPOKT)."""

    settled: int
    minted: int
    supplier: int
    proposer: int
    source_owner: int
    application: int
    dao: int


def distribute(settled_upokt: int, tokenomics: TokenomicsConfig) -> Distribution:
    """Mint=burn TLM (spec §6.3): mint ``floor(settled x mint_ratio)``; supplier, proposer,
    source owner and application get the floor of their share of the mint; the DAO the rest.

    >>> distribute(14, TokenomicsConfig())
    Distribution(settled=14, minted=13, supplier=10, proposer=1, source_owner=0, application=0, \
dao=2)
    """
    minted = math.floor(settled_upokt * tokenomics.ratio("mint_ratio"))

    def share(name: str) -> int:
        return math.floor(Fraction(minted) * tokenomics.ratio(name))

    supplier = share("supplier_share")
    proposer = share("proposer_share")
    source_owner = share("source_owner_share")
    application = share("application_share")
    dao = minted - supplier - proposer - source_owner - application
    return Distribution(settled_upokt, minted, supplier, proposer, source_owner, application, dao)


async def _expire(
    ctx: BlockContext, view: StateView, claim: Claim, reason: str, requirement: str
) -> list[ChainEvent]:
    supplier = claim.supplier_operator_address
    penalty = ctx.config.proof_params.proof_missing_penalty_upokt
    slashed = min(await view.supplier_stake(supplier), penalty)
    view.add_supplier_stake(supplier, -slashed)
    view.count("claims_expired")
    view.count("slashed_upokt", slashed)
    attributes = _claim_attributes(ctx, claim)
    attributes["expiration_reason"] = reason
    attributes["proof_requirement"] = requirement
    return [
        ChainEvent(ctx.height, "EventClaimExpired", attributes),
        ChainEvent(
            ctx.height,
            "EventSupplierSlashed",
            {
                "supplier_operator_address": supplier,
                "session_id": claim.session_header.session_id,
                "slashed_upokt": str(slashed),
                "reason": reason,
            },
        ),
    ]


async def _settle(
    ctx: BlockContext, view: StateView, claim: Claim, requirement: ProofRequirementReason
) -> list[ChainEvent]:
    cfg = ctx.config
    header = claim.session_header
    attributes = _claim_attributes(ctx, claim)
    root = parse_claim_root(claim.root_hash)
    svc = _service(ctx, header.service_id)
    amount = int(attributes["claimed_upokt"])
    problem = None
    if root.sum != root.count * svc.compute_units_per_relay:
        problem = "compute units per relay mismatch"
    elif amount == 0:
        problem = "claimed amount is zero uPOKT (nothing to mint)"
    if problem is not None:
        view.count("claims_discarded")
        attributes["error"] = problem
        return [ChainEvent(ctx.height, "EventClaimDiscarded", attributes)]
    events: list[ChainEvent] = []
    app = header.application_address
    app_stake = await view.app_stake(app)
    if amount > app_stake:
        events.append(
            ChainEvent(
                ctx.height,
                "EventApplicationOverserviced",
                {
                    "application_address": app,
                    "supplier_operator_address": claim.supplier_operator_address,
                    "expected_burn_upokt": str(amount),
                    "effective_burn_upokt": str(app_stake),
                },
            )
        )
        amount = app_stake
    d = distribute(amount, cfg.tokenomics)
    view.add_app_stake(app, -amount)
    view.add_balance(claim.supplier_operator_address, d.supplier)
    view.add_balance(cfg.tokenomics.proposer_address, d.proposer)
    view.add_balance(svc.owner_address, d.source_owner)
    view.add_balance(app, d.application)
    view.add_balance(cfg.tokenomics.dao_address, d.dao)
    view.count("claims_settled")
    view.count("settled_upokt", amount)
    view.count("minted_upokt", d.minted)
    view.count("supplier_rewards_upokt", d.supplier)
    attributes.update(
        {
            "proof_requirement": requirement.name,
            "proof_requirement_int": str(int(requirement)),
            "settled_upokt": str(amount),
            "minted_upokt": str(d.minted),
            "supplier_reward_upokt": str(d.supplier),
            "mint_ratio": repr(cfg.tokenomics.mint_ratio),
            "supplier_owner_address": claim.supplier_operator_address,
        }
    )
    events.append(ChainEvent(ctx.height, "EventClaimSettled", attributes))
    return events


async def settle_claim(ctx: BlockContext, view: StateView, claim: Claim) -> list[ChainEvent]:
    """Settle or expire one claim and remove it (tokenomics EndBlocker)."""
    requirement = await proof_requirement_for(ctx, claim)
    status = claim.proof_validation_status
    if requirement.is_required and status == poktroll_pb2.PENDING_VALIDATION:
        events = await _expire(ctx, view, claim, "PROOF_MISSING", requirement.name)
    elif requirement.is_required and status == poktroll_pb2.INVALID:
        events = await _expire(ctx, view, claim, "PROOF_INVALID", requirement.name)
    else:
        events = await _settle(ctx, view, claim, requirement)
    h = claim.session_header
    view.delete_claim(claim.supplier_operator_address, h.session_id, h.session_end_block_height)
    return events


async def settle_claims(ctx: BlockContext, view: StateView) -> list[ChainEvent]:
    """Every claim whose settlement height is this block (``E = height - T - 1``)."""
    p = ctx.config.shared_params
    end = ctx.height - session_end_to_proof_close_blocks(p) - 1
    if end < 1 or settlement_height(p, end) != ctx.height:
        return []
    events: list[ChainEvent] = []
    for supplier, sid in await view.claims_ending_at(end):
        claim = await view.get_claim(supplier, sid)
        if claim is not None:
            events.extend(await settle_claim(ctx, view, claim))
    return events
