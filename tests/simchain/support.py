"""Helpers of the simulated-chain tests: a small chain config, trees, claims and proofs.

Timeline of session 1 with :data:`PARAMS` (N=4, G=1, CO=1, CC=2, PO=1, PC=2): blocks 1-4,
claim window 6..8, proof seed block 8, proof window 9..11, settlement in block 11. Session 2
(5-8): claim 10..12, seed 12, proof 13..15, settlement 15.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relayminer.chain.base import MsgCreateClaim, MsgSubmitProof, SessionHeader
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams
from relayminer.smst.proof import proof_path
from relayminer.smst.trie import SparseMerkleSumTrie

PARAMS = SharedParams(
    num_blocks_per_session=4,
    grace_period_end_offset_blocks=1,
    claim_window_open_offset_blocks=1,
    claim_window_close_offset_blocks=2,
    proof_window_open_offset_blocks=1,
    proof_window_close_offset_blocks=2,
    compute_units_to_tokens_multiplier=1_000_000,  # 1 CU = 1 uPOKT
    compute_unit_cost_granularity=1_000_000,
)
# Session 1 (blocks 1..4)
CLAIM_OPEN, CLAIM_CLOSE = 6, 8
SEED_HEIGHT = 8
PROOF_OPEN, PROOF_CLOSE = 9, 11
SETTLEMENT = 11

APP, APP2 = "pokt1app", "pokt1app2"
SUP1, SUP2, SUP3 = "pokt1sup1", "pokt1sup2", "pokt1sup3"
SVC, SVC_HARD = "svc", "svc-hard"
CUPR = 10
HARD_TARGET = b"\x3f" + b"\xff" * 31  # multiplier ~4

ALWAYS = ProofParams(proof_requirement_threshold_upokt=0, proof_request_probability=0.0)
LOTTERY = ProofParams(proof_requirement_threshold_upokt=10**15, proof_request_probability=1.0)
NEVER = ProofParams(proof_requirement_threshold_upokt=10**15, proof_request_probability=0.0)
PENALTY = ALWAYS.proof_missing_penalty_upokt


def make_config(
    *,
    proof_params: ProofParams = ALWAYS,
    drop_rate: float = 0.0,
    num_suppliers_per_session: int = 50,
    initial_balances: dict[str, int] | None = None,
    seed: int = 7,
) -> SimChainConfig:
    return SimChainConfig(
        block_time_seconds=0.01,
        shared_params=PARAMS,
        proof_params=proof_params,
        services={
            SVC: ServiceConfig(compute_units_per_relay=CUPR, owner_address="pokt1svcowner"),
            SVC_HARD: ServiceConfig(compute_units_per_relay=3, relay_difficulty_target=HARD_TARGET),
        },
        applications={APP: (SVC,), APP2: (SVC_HARD,)},
        suppliers={SUP1: (SVC,), SUP2: (SVC,), SUP3: (SVC_HARD,)},
        num_suppliers_per_session=num_suppliers_per_session,
        drop_rate=drop_rate,
        seed=seed,
        initial_balances=initial_balances or {},
    )


async def advance_to(chain: SimulatedChain, height: int) -> None:
    """Produce blocks until the latest block is ``height``."""
    latest = (await chain.latest_block()).height
    assert latest <= height, f"already at {latest}"
    for _ in range(height - latest):
        await chain.produce_block()


@dataclass
class Tree:
    trie: SparseMerkleSumTrie
    relays: list[bytes]

    @property
    def root(self) -> bytes:
        return self.trie.root()

    def proof(self, seed_hash: bytes, session_id: str) -> bytes:
        closest = self.trie.prove_closest(proof_path(seed_hash, session_id))
        return closest.compact().to_bytes()


def build_tree(
    header: SessionHeader,
    supplier: str,
    n: int,
    cupr: int = CUPR,
    *,
    relay_supplier: str | None = None,
    first_nonce: int = 0,
) -> Tree:
    """An SMST of ``n`` relays built with :mod:`relayminer.chain.sim.relay_builder`."""
    trie = SparseMerkleSumTrie()
    relays = []
    for i in range(first_nonce, first_nonce + n):
        relay = build_relay(
            header, relay_supplier or supplier, jsonrpc_request(i), f'{{"result":{i}}}'.encode()
        )
        trie.update(relay.relay_hash, relay.relay_bytes, cupr)
        relays.append(relay.relay_bytes)
    return Tree(trie, relays)


def fake_root(count: int, total: int, digest: bytes = b"\x11" * 32) -> bytes:
    return digest + total.to_bytes(8, "big") + count.to_bytes(8, "big")


def claim(supplier: str, header: SessionHeader, root: bytes) -> MsgCreateClaim:
    return MsgCreateClaim(supplier_operator_address=supplier, session_header=header, root_hash=root)


def proof(supplier: str, header: SessionHeader, proof_bytes: bytes) -> MsgSubmitProof:
    return MsgSubmitProof(
        supplier_operator_address=supplier, session_header=header, proof=proof_bytes
    )


def event_types(events: Sequence[object]) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]
