"""GrpcQueryClient and PocketQueries against an in-process grpc.aio node on loopback."""

from __future__ import annotations

import asyncio

import pytest

from relayminer.chain.base import ChainUnavailableError
from relayminer.chain.pocket.grpc_client import (
    GrpcQueryClient,
    MalformedResponseError,
    QueryFailedError,
)
from relayminer.chain.pocket.queries import PocketQueries
from relayminer.proto import pocket_proof_pb2, pocket_session_pb2, pocket_shared_pb2, poktroll_pb2

from .fakes import GrpcServer, NodeState, free_port

SUPPLIER = "pokt1supplier"


def _claim(session_id: str, end: int = 20) -> poktroll_pb2.Claim:
    return poktroll_pb2.Claim(
        supplier_operator_address=SUPPLIER,
        session_header=poktroll_pb2.SessionHeader(
            application_address="pokt1app",
            service_id="anvil",
            session_id=session_id,
            session_start_block_height=end - 9,
            session_end_block_height=end,
        ),
        root_hash=b"\x01" * 48,
    )


async def test_failover_to_the_second_endpoint(grpc_node: GrpcServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    client = GrpcQueryClient([dead, grpc_node.address], timeout=2.0)
    try:
        params = await PocketQueries(client).shared_params()
        assert params.num_blocks_per_session == 10
        assert client.endpoints[client._preferred] == grpc_node.address
        assert client.last_success is not None
    finally:
        await client.close()


async def test_every_endpoint_down_is_chain_unavailable() -> None:
    client = GrpcQueryClient([f"127.0.0.1:{free_port()}"], timeout=1.0)
    try:
        with pytest.raises(ChainUnavailableError) as info:
            await PocketQueries(client).shared_params()
        assert "UNAVAILABLE" in str(info.value) or "DEADLINE" in str(info.value)
    finally:
        await client.close()


async def test_slow_node_times_out_as_chain_unavailable(
    grpc_node: GrpcServer, node_state: NodeState
) -> None:
    node_state.stall = asyncio.Event()
    client = GrpcQueryClient([grpc_node.address], timeout=0.3)
    try:
        with pytest.raises(QueryFailedError) as info:
            await PocketQueries(client).proof_params()
        assert info.value.code == "DEADLINE_EXCEEDED"
        assert isinstance(info.value, ChainUnavailableError)
    finally:
        node_state.stall.set()
        await client.close()


async def test_not_found_is_none_and_other_errors_raise(grpc_node: GrpcServer) -> None:
    client = GrpcQueryClient([grpc_node.address])
    queries = PocketQueries(client)
    try:
        assert await queries.claim(SUPPLIER, "nope") is None
        assert await queries.account("pokt1unknown") is None
        assert await queries.compute_units_per_relay("unknown-service", 5) is None
        with pytest.raises(QueryFailedError) as info:  # GetSession answers Internal
            await queries.session("pokt1app", "anvil", 5)
        assert info.value.code == "INTERNAL"
        with pytest.raises(QueryFailedError) as bad:
            await queries.shared_params(-1)
        assert bad.value.code == "INVALID_ARGUMENT"
    finally:
        await client.close()


async def test_at_height_metadata_and_cache(grpc_node: GrpcServer, node_state: NodeState) -> None:
    client = GrpcQueryClient([grpc_node.address])
    try:
        first = await client.call(
            "/pocket.shared.Query/ParamsAtHeight",
            pocket_shared_pb2.QueryParamsAtHeightRequest(height=7),
            pocket_shared_pb2.QueryParamsAtHeightResponse,
            height=7,
            cache=True,
        )
        again = await client.call(
            "/pocket.shared.Query/ParamsAtHeight",
            pocket_shared_pb2.QueryParamsAtHeightRequest(height=7),
            pocket_shared_pb2.QueryParamsAtHeightResponse,
            height=7,
            cache=True,
        )
        assert first is again
        assert node_state.heights_seen == ["7"]  # the second answer came from the cache
    finally:
        await client.close()


async def test_malformed_response_names_the_method(grpc_node: GrpcServer) -> None:
    client = GrpcQueryClient([grpc_node.address])
    try:
        # Decoding a params answer as a session answer: field 1 is a Params, not a Session.
        with pytest.raises(MalformedResponseError) as info:
            await client.call(
                "/pocket.proof.Query/Params",
                pocket_proof_pb2.QueryParamsRequest(),
                pocket_session_pb2.QueryGetSessionResponse,
            )
        assert "/pocket.proof.Query/Params" in str(info.value)
    finally:
        await client.close()


async def test_claims_follow_pagination(grpc_node: GrpcServer, node_state: NodeState) -> None:
    for i in range(5):
        node_state.claims[(SUPPLIER, f"s{i}")] = _claim(f"s{i}")
    node_state.claims[("pokt1other", "x")] = _claim("x")
    client = GrpcQueryClient([grpc_node.address])
    try:
        found = await PocketQueries(client).claims(SUPPLIER)
        assert sorted(c.session_header.session_id for c in found) == [f"s{i}" for i in range(5)]
    finally:
        await client.close()


async def test_params_account_balance_and_service(
    grpc_node: GrpcServer, node_state: NodeState
) -> None:
    node_state.accounts["pokt1me"] = 42
    node_state.balances["pokt1me"] = 1234
    client = GrpcQueryClient([grpc_node.address])
    queries = PocketQueries(client)
    try:
        proof = await queries.proof_params()
        assert proof.proof_submission_fee_upokt == 1_000_000
        assert proof.proof_request_probability == 0.25
        account = await queries.account("pokt1me")
        assert account is not None and account.account_number == 42
        assert await queries.balance("pokt1me") == 1234
        assert await queries.balance("pokt1empty") == 0
        assert await queries.relay_difficulty_target("anvil", 3) == b"\xff" * 32
        assert await queries.compute_units_per_relay("anvil", 3) == 1
        assert (await queries.shared_params(12)).claim_window_close_offset_blocks == 4
    finally:
        await client.close()


def test_a_client_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        GrpcQueryClient([])
