"""Proofs and settlement end to end with real SMSTs of relays from ``relay_builder``
(spec lifecycle.md §2.2, §2.5, §6.3)."""

from __future__ import annotations

import hashlib
import math

import pytest

from relayminer.chain.base import SessionHeader
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import DEFAULT_STAKE_UPOKT
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request, mine_relay
from relayminer.chain.sim.rules import distribute
from relayminer.proto import poktroll_pb2
from relayminer.protocol.proof_requirement import ProofParams, claimed_upokt, proof_requirement
from relayminer.smst.proof import proof_path
from relayminer.smst.trie import SparseMerkleSumTrie
from tests.simchain.conftest import ChainFactory
from tests.simchain.support import (
    ALWAYS,
    APP,
    APP2,
    CLAIM_OPEN,
    CUPR,
    HARD_TARGET,
    LOTTERY,
    NEVER,
    PARAMS,
    PENALTY,
    PROOF_CLOSE,
    PROOF_OPEN,
    SEED_HEIGHT,
    SETTLEMENT,
    SUP1,
    SUP2,
    SUP3,
    SVC,
    SVC_HARD,
    Tree,
    advance_to,
    build_tree,
    claim,
    event_types,
    make_config,
    proof,
)


async def claimed_session(
    chain: SimulatedChain, tree_size: int = 5, supplier: str = SUP1
) -> tuple[SessionHeader, Tree]:
    """Session 1 of APP/SVC claimed by ``supplier`` with a real tree, chain at PROOF_OPEN - 1."""
    header = (await chain.get_session(APP, SVC, 1)).header
    tree = build_tree(header, supplier, tree_size)
    await advance_to(chain, CLAIM_OPEN - 1)
    result = await chain.broadcast([claim(supplier, header, tree.root)])
    assert result.ok, result.log
    await advance_to(chain, PROOF_OPEN - 1)
    assert await chain.get_claim(supplier, header.session_id) is not None
    return header, tree


async def events_named(chain: SimulatedChain, name: str) -> list[dict[str, str]]:
    latest = (await chain.latest_block()).height
    return [e.attributes for e in await chain.events(1, latest) if e.type == name]


@pytest.mark.parametrize(("params", "reason"), [(ALWAYS, "THRESHOLD"), (LOTTERY, "PROBABILISTIC")])
async def test_required_proof_is_validated_and_the_claim_settles(
    make_chain: ChainFactory, params: ProofParams, reason: str
) -> None:
    chain = await make_chain(make_config(proof_params=params))
    header, tree = await claimed_session(chain)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    # The miner's prediction (same inputs) agrees with the chain.
    unproven = poktroll_pb2.Claim(supplier_operator_address=SUP1, root_hash=tree.root)
    unproven.session_header.CopyFrom(header)
    assert proof_requirement(unproven, params, PARAMS, b"\xff" * 32, seed_hash).name == reason

    result = await chain.broadcast([proof(SUP1, header, tree.proof(seed_hash, header.session_id))])
    assert result.ok, result.log
    await chain.produce_block()
    stored = await chain.get_claim(SUP1, header.session_id)
    assert stored is not None
    assert stored.proof_validation_status == poktroll_pb2.VALIDATED
    assert event_types(await chain.events(PROOF_OPEN, PROOF_OPEN)) == [
        "EventProofSubmitted",
        "EventProofValidityChecked",
    ]

    await advance_to(chain, SETTLEMENT - 1)
    assert await chain.get_claim(SUP1, header.session_id) is not None
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is None
    assert await chain.claims(SUP1) == []

    settled = await events_named(chain, "EventClaimSettled")
    assert len(settled) == 1
    attrs = settled[0]
    assert attrs["num_relays"] == "5"
    assert attrs["claimed_compute_units"] == str(5 * CUPR)
    assert attrs["claimed_upokt"] == "50"  # CUTTM/GRAN = 1 uPOKT per CU
    assert attrs["proof_requirement"] == reason
    assert attrs["supplier_operator_address"] == SUP1
    # 50 uPOKT: mint floor(48.75) = 48; supplier floor(37.92) = 37; proposer 6; owner 1; DAO 4.
    d = distribute(50, chain.config.tokenomics)
    assert (d.minted, d.supplier, d.proposer, d.source_owner, d.application, d.dao) == (
        48,
        37,
        6,
        1,
        0,
        4,
    )
    assert await chain.balance(SUP1) == 37
    assert await chain.balance("pokt1simproposer") == 6
    assert await chain.balance("pokt1svcowner") == 1
    assert await chain.balance("pokt1simdao") == 4
    assert await chain.application_stake(APP) == DEFAULT_STAKE_UPOKT - 50
    assert await chain.supplier_stake(SUP1) == DEFAULT_STAKE_UPOKT
    summary = await chain.summary()
    assert (summary.claims_settled, summary.claims_expired) == (1, 0)
    assert (summary.settled_upokt, summary.minted_upokt, summary.supplier_rewards_upokt) == (
        50,
        48,
        37,
    )
    assert summary.proofs_validated == 1


async def test_proof_on_the_last_window_block_is_accepted(chain: SimulatedChain) -> None:
    header, tree = await claimed_session(chain)
    await advance_to(chain, PROOF_CLOSE - 1)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    result = await chain.broadcast([proof(SUP1, header, tree.proof(seed_hash, header.session_id))])
    assert result.ok, result.log
    block = await chain.produce_block()  # proof EndBlocker, then settlement, same block
    assert block.height == SETTLEMENT
    assert len(await events_named(chain, "EventClaimSettled")) == 1


@pytest.mark.parametrize("landing", [PROOF_OPEN - 1, PROOF_CLOSE + 1])
async def test_proof_outside_the_window_is_rejected(chain: SimulatedChain, landing: int) -> None:
    header = (await chain.get_session(APP, SVC, 1)).header
    tree = build_tree(header, SUP1, 5)
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP1, header, tree.root)])).ok
    await advance_to(chain, landing - 1)
    # Too early the seed block does not exist yet: the window check comes first anyway.
    some_hash = await chain.block_hash(CLAIM_OPEN)
    result = await chain.broadcast([proof(SUP1, header, tree.proof(some_hash, header.session_id))])
    assert result.code != 0
    assert "proof window" in result.log


async def test_proof_without_claim_is_rejected(chain: SimulatedChain) -> None:
    header, _ = await claimed_session(chain, supplier=SUP1)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    other = build_tree(header, SUP2, 3)
    result = await chain.broadcast([proof(SUP2, header, other.proof(seed_hash, header.session_id))])
    assert result.code != 0
    assert "claim not found" in result.log


async def test_undecodable_proof_is_rejected(chain: SimulatedChain) -> None:
    header, _ = await claimed_session(chain)
    for junk, expected in [(b"", "proof is empty"), (b"\x01\x02\x03", "failed to decode proof")]:
        result = await chain.broadcast([proof(SUP1, header, junk)])
        assert result.code != 0
        assert expected in result.log


async def test_not_required_proof_is_rejected_and_the_claim_settles_without_it(
    make_chain: ChainFactory,
) -> None:
    chain = await make_chain(make_config(proof_params=NEVER))
    header, tree = await claimed_session(chain)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    result = await chain.broadcast([proof(SUP1, header, tree.proof(seed_hash, header.session_id))])
    assert result.code != 0
    assert "proof not required" in result.log
    await advance_to(chain, SETTLEMENT)
    settled = await events_named(chain, "EventClaimSettled")
    assert len(settled) == 1
    assert settled[0]["proof_requirement"] == "NOT_REQUIRED"
    assert await chain.balance(SUP1) == 37
    assert await events_named(chain, "EventClaimExpired") == []


async def test_missing_proof_expires_the_claim_and_slashes(chain: SimulatedChain) -> None:
    header, _ = await claimed_session(chain)
    await advance_to(chain, SETTLEMENT)
    expired = await events_named(chain, "EventClaimExpired")
    assert len(expired) == 1
    assert expired[0]["expiration_reason"] == "PROOF_MISSING"
    assert expired[0]["session_id"] == header.session_id
    slashed = await events_named(chain, "EventSupplierSlashed")
    assert slashed == [
        {
            "supplier_operator_address": SUP1,
            "session_id": header.session_id,
            "slashed_upokt": str(PENALTY),
            "reason": "PROOF_MISSING",
        }
    ]
    assert await chain.supplier_stake(SUP1) == DEFAULT_STAKE_UPOKT - PENALTY
    assert await chain.balance(SUP1) == 0
    assert await chain.get_claim(SUP1, header.session_id) is None
    summary = await chain.summary()
    assert (summary.claims_settled, summary.claims_expired, summary.slashed_upokt) == (
        0,
        1,
        PENALTY,
    )


def _tampered(
    kind: str, header: SessionHeader, tree: Tree, seed_hash: bytes, other: bytes
) -> bytes:
    """Proof bytes that decode fine but fail the proof EndBlocker."""
    sid = header.session_id
    if kind == "wrong_seed_block":
        return tree.proof(other, sid)
    if kind == "other_tree":
        bigger = build_tree(header, SUP1, 6)  # one more relay: another root
        return bigger.proof(seed_hash, sid)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("wrong_seed_block", "proof path"),
        ("other_tree", "does not verify"),
    ],
)
async def test_tampered_proof_is_invalid_then_expired_and_slashed(
    chain: SimulatedChain, kind: str, reason: str
) -> None:
    header, tree = await claimed_session(chain)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    other = await chain.block_hash(SEED_HEIGHT - 1)
    result = await chain.broadcast(
        [proof(SUP1, header, _tampered(kind, header, tree, seed_hash, other))]
    )
    assert result.ok, result.log
    await chain.produce_block()
    stored = await chain.get_claim(SUP1, header.session_id)
    assert stored is not None and stored.proof_validation_status == poktroll_pb2.INVALID
    checked = await events_named(chain, "EventProofValidityChecked")
    assert checked[0]["proof_validation_status"] == "INVALID"
    assert reason in checked[0]["failure_reason"]
    await advance_to(chain, SETTLEMENT)
    expired = await events_named(chain, "EventClaimExpired")
    assert [e["expiration_reason"] for e in expired] == ["PROOF_INVALID"]
    assert await chain.supplier_stake(SUP1) == DEFAULT_STAKE_UPOKT - PENALTY
    assert await chain.balance(SUP1) == 0
    assert (await chain.summary()).proofs_invalid == 1


async def test_relay_of_another_supplier_makes_the_proof_invalid(chain: SimulatedChain) -> None:
    header = (await chain.get_session(APP, SVC, 1)).header
    tree = build_tree(header, SUP1, 4, relay_supplier=SUP2)  # relays name SUP2
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP1, header, tree.root)])).ok
    await advance_to(chain, PROOF_OPEN - 1)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    assert (
        await chain.broadcast([proof(SUP1, header, tree.proof(seed_hash, header.session_id))])
    ).ok
    await chain.produce_block()
    checked = await events_named(chain, "EventProofValidityChecked")
    assert "supplier" in checked[0]["failure_reason"]
    assert checked[0]["proof_validation_status"] == "INVALID"


async def _hard_claim(chain: SimulatedChain, relays: list[bytes]) -> tuple[SessionHeader, Tree]:
    header = (await chain.get_session(APP2, SVC_HARD, 1)).header
    trie = SparseMerkleSumTrie()
    for r in relays:
        trie.update(hashlib.sha256(r).digest(), r, 3)
    tree = Tree(trie, relays)
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP3, header, tree.root)])).ok
    await advance_to(chain, PROOF_OPEN - 1)
    return header, tree


async def test_relay_difficulty_scales_the_reward_and_is_checked(chain: SimulatedChain) -> None:
    header = (await chain.get_session(APP2, SVC_HARD, 1)).header
    mined = [
        mine_relay(header, SUP3, jsonrpc_request, b"{}", HARD_TARGET, seed=i).relay_bytes
        for i in range(4)
    ]
    header, tree = await _hard_claim(chain, mined)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    assert (
        await chain.broadcast([proof(SUP3, header, tree.proof(seed_hash, header.session_id))])
    ).ok
    await advance_to(chain, SETTLEMENT)
    settled = await events_named(chain, "EventClaimSettled")
    assert len(settled) == 1
    expected = claimed_upokt(12, PARAMS, HARD_TARGET)
    assert expected == math.floor(12 * (2**256 - 1) / (2**254 - 1))  # multiplier ~4 → 48
    assert settled[0]["claimed_upokt"] == str(expected) == "48"
    assert settled[0]["num_estimated_relays"] == "16"


async def test_relay_above_the_difficulty_target_makes_the_proof_invalid(
    chain: SimulatedChain,
) -> None:
    header = (await chain.get_session(APP2, SVC_HARD, 1)).header
    nonce = 0
    while True:  # a relay whose hash does NOT meet the target (3 in 4 do not)
        relay = build_relay(header, SUP3, jsonrpc_request(nonce), b"{}")
        if relay.relay_hash >= HARD_TARGET:
            break
        nonce += 1
    header, tree = await _hard_claim(chain, [relay.relay_bytes])  # one leaf: always the closest
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    assert (
        await chain.broadcast([proof(SUP3, header, tree.proof(seed_hash, header.session_id))])
    ).ok
    await chain.produce_block()
    checked = await events_named(chain, "EventProofValidityChecked")
    assert "difficulty target" in checked[0]["failure_reason"]


async def test_several_claims_settle_in_one_block(chain: SimulatedChain) -> None:
    header = (await chain.get_session(APP, SVC, 1)).header
    t1, t2 = build_tree(header, SUP1, 5), build_tree(header, SUP2, 2, first_nonce=100)
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP1, header, t1.root), claim(SUP2, header, t2.root)])).ok
    await advance_to(chain, PROOF_OPEN - 1)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    sid = header.session_id
    assert (await chain.broadcast([proof(SUP1, header, t1.proof(seed_hash, sid))])).ok
    await advance_to(chain, SETTLEMENT)
    settled = await events_named(chain, "EventClaimSettled")
    expired = await events_named(chain, "EventClaimExpired")
    assert [e["supplier_operator_address"] for e in settled] == [SUP1]
    assert [(e["supplier_operator_address"], e["expiration_reason"]) for e in expired] == [
        (SUP2, "PROOF_MISSING")
    ]
    assert {e.height for e in await chain.events(SETTLEMENT, SETTLEMENT)} == {SETTLEMENT}


async def test_proof_fee_needs_a_balance_and_is_charged(make_chain: ChainFactory) -> None:
    params = ProofParams(
        proof_requirement_threshold_upokt=0,
        proof_request_probability=0.0,
        proof_submission_fee_upokt=3,
    )
    chain = await make_chain(make_config(proof_params=params, initial_balances={SUP2: 10}))
    header = (await chain.get_session(APP, SVC, 1)).header
    t1, t2 = build_tree(header, SUP1, 2), build_tree(header, SUP2, 2)
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP1, header, t1.root), claim(SUP2, header, t2.root)])).ok
    await advance_to(chain, PROOF_OPEN - 1)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    sid = header.session_id
    poor = await chain.broadcast([proof(SUP1, header, t1.proof(seed_hash, sid))])
    assert poor.code != 0 and "insufficient balance" in poor.log
    rich = await chain.broadcast([proof(SUP2, header, t2.proof(seed_hash, sid))])
    assert rich.ok, rich.log
    await chain.produce_block()
    assert await chain.balance(SUP2) == 7


async def test_second_proof_in_one_block_is_an_update(chain: SimulatedChain) -> None:
    header, tree = await claimed_session(chain)
    seed_hash = await chain.block_hash(SEED_HEIGHT)
    good = tree.proof(seed_hash, header.session_id)
    assert (await chain.broadcast([proof(SUP1, header, good)])).ok
    # same msgs → same tx hash; a different proof (wrong path) then the good one again
    bad = tree.proof(await chain.block_hash(2), header.session_id)
    assert (await chain.broadcast([proof(SUP1, header, bad), proof(SUP1, header, good)])).ok
    await chain.produce_block()
    assert event_types(await chain.events(PROOF_OPEN, PROOF_OPEN)) == [
        "EventProofSubmitted",
        "EventProofUpdated",
        "EventProofUpdated",
        "EventProofValidityChecked",
    ]
    stored = await chain.get_claim(SUP1, header.session_id)
    assert stored is not None and stored.proof_validation_status == poktroll_pb2.VALIDATED


def test_proof_path_is_the_protocol_path() -> None:
    assert proof_path(b"\xab" * 32, "session-123").hex().startswith("903fa382")
