"""PocketChain end to end against the in-process gRPC node and CometBFT doubles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from relayminer.chain.base import Chain, ChainUnavailableError, MsgCreateClaim, MsgSubmitProof
from relayminer.chain.pocket import (
    ChainIdMismatchError,
    KeySet,
    PocketChain,
    PocketChainSettings,
    PocketKey,
    UnknownServiceError,
    build_pocket_chain,
)
from relayminer.chain.pocket.broadcaster import compute_fee, gas_limit_for
from relayminer.chain.rejections import Rejection
from relayminer.proto import cosmos_tx_pb2, pocket_session_pb2, pocket_shared_pb2, poktroll_pb2

from .fakes import CometState, GrpcServer, NodeState, block_hash_at, verify_tx

KEY = PocketKey.from_hex("5ed284207b7d91bbc56452c0d846f1d95705c919a6ac3bf4dde208ada161e774")
SUPPLIER = KEY.address()
APP = "pokt14xd8y2v2ud9s7fj8eev0a9sccknfwch5ta5gr5"
HEADER = poktroll_pb2.SessionHeader(
    application_address=APP,
    service_id="anvil",
    session_id="ab" * 32,
    session_start_block_height=1,
    session_end_block_height=10,
)


def _settings(grpc_address: str, rpc_url: str, **extra: object) -> PocketChainSettings:
    return PocketChainSettings.model_validate(
        {
            "chain_id": "pocket",
            "grpc_endpoints": [grpc_address],
            "rpc_url": rpc_url,
            "keys": {"keys_file": "/nonexistent"},  # keys are injected below
            **extra,
        }
    )


@pytest.fixture
async def chain(
    grpc_node: GrpcServer, comet_url: str, node_state: NodeState
) -> AsyncIterator[PocketChain]:
    node_state.accounts[SUPPLIER] = 7
    built = build_pocket_chain(
        _settings(grpc_node.address, comet_url, memo="relayminer"),
        keys=lambda: KeySet([KEY]),
    )
    await built.start()
    try:
        yield built
    finally:
        await built.close()


async def test_claim_then_proof_through_the_chain_methods(
    chain: PocketChain, node_state: NodeState, comet_state: CometState
) -> None:
    assert isinstance(chain, Chain)
    node_state.sessions[(APP, "anvil", 1)] = pocket_session_pb2.Session(
        header=HEADER, suppliers=[pocket_shared_pb2.Supplier(operator_address=SUPPLIER)]
    )
    latest = await chain.latest_block()
    assert latest.height == 10
    assert (await chain.block_hash(3)).hex().upper() == block_hash_at(3)
    session = await chain.get_session(APP, "anvil", 1)
    assert session.suppliers == (SUPPLIER,) and session.header.session_id == HEADER.session_id
    params = await chain.shared_params(10)
    assert params.num_blocks_per_session == 10
    assert (await chain.proof_params()).proof_missing_penalty_upokt == 320_000_000
    service = await chain.service("anvil", 1)
    assert service.compute_units_per_relay == 1
    with pytest.raises(UnknownServiceError):
        await chain.service("nope", 1)

    claim = MsgCreateClaim(
        supplier_operator_address=SUPPLIER, session_header=HEADER, root_hash=b"\x07" * 48
    )
    result = await chain.broadcast([claim])
    assert result.ok, result
    (raw,) = node_state.received
    assert verify_tx(raw, "pocket", 7)
    body = cosmos_tx_pb2.TxBody.FromString(raw.body_bytes)
    auth = cosmos_tx_pb2.AuthInfo.FromString(raw.auth_info_bytes)
    assert body.unordered and body.memo == "relayminer"
    assert auth.signer_infos[0].sequence == 0
    assert auth.fee.gas_limit == gas_limit_for(120_000, Decimal("1.7")) == 204_000
    assert auth.fee.amount[0].amount == "3"  # ceil(204000 x 0.00001)
    deadline = body.timeout_timestamp.seconds - int(latest.time_unix)
    assert 119 <= deadline <= 121

    stored = await chain.get_claim(SUPPLIER, HEADER.session_id)
    assert stored is not None and stored.root_hash == b"\x07" * 48
    assert [c.session_header.session_id for c in await chain.claims(SUPPLIER)] == [
        HEADER.session_id
    ]

    proof = MsgSubmitProof(supplier_operator_address=SUPPLIER, session_header=HEADER, proof=b"p")
    assert (await chain.broadcast([proof])).ok
    stored = await chain.get_claim(SUPPLIER, HEADER.session_id)
    assert stored is not None and stored.proof_validation_status == poktroll_pb2.VALIDATED
    second_body = cosmos_tx_pb2.TxBody.FromString(node_state.received[-1].body_bytes)
    assert second_body.timeout_timestamp != body.timeout_timestamp  # unique per signer

    # settlement event without a session id gets it from the claim seen above
    comet_state.block_results[11] = {
        "finalize_block_events": [
            {
                "type": "pocket.tokenomics.EventClaimExpired",
                "attributes": [
                    {"key": "supplier_operator_address", "value": f'"{SUPPLIER}"'},
                    {"key": "application_address", "value": f'"{APP}"'},
                    {"key": "service_id", "value": '"anvil"'},
                    {"key": "session_end_block_height", "value": '"10"'},
                    {"key": "expiration_reason", "value": '"PROOF_INVALID"'},
                    {"key": "mode", "value": "EndBlock"},
                ],
            }
        ]
    }
    await comet_state.commit(1)
    assert (await chain.wait_for_block(11, timeout=5)).height == 11
    (event,) = await chain.events(10, 11)
    assert event.type == "EventClaimExpired"
    assert event.attributes["session_id"] == HEADER.session_id


@pytest.mark.parametrize(
    ("simulate_error", "broadcast_code", "expected"),
    [
        (
            "failed to execute message; message index: 0: rpc error: code = FailedPrecondition "
            "desc = claim attempted outside of the session's claim window: current block height "
            "(30) is greater than session claim window close height (15) With gas wanted: "
            "'0' and gas used: '80000' ",
            None,
            Rejection.WINDOW_CLOSED,
        ),
        (
            "rpc error: code = FailedPrecondition desc = proof not required",
            None,
            Rejection.PROOF_NOT_REQUIRED,
        ),
        (
            None,
            ("sdk", 13, "insufficient fees; got: 3upokt required: 204upokt"),
            Rejection.INSUFFICIENT_FEE,
        ),
        (None, ("sdk", 19, "tx already exists in cache"), Rejection.ALREADY_IN_MEMPOOL),
        (
            None,
            ("sdk", 18, "failed to add unordered nonce: already used timeout"),
            Rejection.RETRYABLE,
        ),
        (None, ("sdk", 4, "signature verification failed"), Rejection.CONFIGURATION),
        (None, ("proof", 1115, "invalid session header"), Rejection.INVALID_CONTENT),
    ],
)
async def test_rejections_are_classified(
    chain: PocketChain,
    node_state: NodeState,
    simulate_error: str | None,
    broadcast_code: tuple[str, int, str] | None,
    expected: Rejection,
) -> None:
    node_state.simulate_error = simulate_error
    node_state.broadcast_code = broadcast_code
    msg = MsgCreateClaim(
        supplier_operator_address=SUPPLIER, session_header=HEADER, root_hash=b"\x01" * 48
    )
    result = await chain.broadcast([msg])
    assert not result.ok
    assert result.reason is expected
    assert (simulate_error is None) == bool(
        node_state.received
    )  # no broadcast after a failed simulate


async def test_a_supplier_without_key_is_a_configuration_rejection(chain: PocketChain) -> None:
    other = PocketKey.from_hex("02" * 32).address()
    msg = MsgCreateClaim(supplier_operator_address=other, session_header=HEADER, root_hash=b"1")
    result = await chain.broadcast([msg])
    assert result.reason is Rejection.CONFIGURATION and other in result.log
    assert not (await chain.broadcast([])).ok


async def test_ordered_txs_track_and_resync_the_sequence(
    grpc_node: GrpcServer, comet_url: str, node_state: NodeState
) -> None:
    node_state.accounts[SUPPLIER] = 7
    chain = build_pocket_chain(
        _settings(
            grpc_node.address, comet_url, unordered=False, gas_limit=300_000, max_fee_upokt=2
        ),
        keys=lambda: KeySet([KEY]),
    )
    msg = MsgCreateClaim(supplier_operator_address=SUPPLIER, session_header=HEADER, root_hash=b"1")
    try:
        await chain.start()
        assert (await chain.broadcast([msg])).ok
        assert (await chain.broadcast([msg])).ok
        node_state.broadcast_code = ("sdk", 32, "account sequence mismatch, expected 9, got 5")
        assert (await chain.broadcast([msg])).reason is Rejection.WRONG_SEQUENCE
        node_state.broadcast_code = None
        assert (await chain.broadcast([msg])).ok
    finally:
        await chain.close()
    sequences = [
        cosmos_tx_pb2.AuthInfo.FromString(r.auth_info_bytes).signer_infos[0].sequence
        for r in node_state.received
    ]
    assert sequences == [3, 4, 5, 3]  # the fake account reports sequence 3 on every read
    fees = {
        cosmos_tx_pb2.AuthInfo.FromString(r.auth_info_bytes).fee.amount[0].amount
        for r in node_state.received
    }
    assert fees == {"2"}  # ceil(300000 x 0.00001) = 3, capped at 2
    body = cosmos_tx_pb2.TxBody.FromString(node_state.received[0].body_bytes)
    assert not body.unordered and not body.HasField("timeout_timestamp")


async def test_wrong_network_is_refused(
    grpc_node: GrpcServer, comet_url: str, comet_state: CometState
) -> None:
    comet_state.network = "pocket-beta"
    chain = build_pocket_chain(_settings(grpc_node.address, comet_url), keys=lambda: KeySet())
    try:
        with pytest.raises(ChainIdMismatchError, match="pocket-beta"):
            await chain.start()
    finally:
        await chain.close()


async def test_no_action_while_catching_up(chain: PocketChain, comet_state: CometState) -> None:
    comet_state.catching_up = True
    with pytest.raises(ChainUnavailableError, match="catching up"):
        await chain.latest_block()
    comet_state.catching_up = False
    assert (await chain.latest_block()).height == comet_state.height


def test_fee_arithmetic() -> None:
    assert gas_limit_for(120_000, Decimal("1.7")) == 204_000
    assert compute_fee(204_000, Decimal("0.00001"), None) == 3
    assert compute_fee(200_000, Decimal("0.00001"), None) == 2
    assert compute_fee(204_000, Decimal("0.00001"), 1) == 1
    assert compute_fee(0, Decimal("0.00001"), None) == 0
