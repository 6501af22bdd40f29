"""Every query over gRPC (and through abci_query), with the node's status codes."""

from __future__ import annotations

from typing import Any

import aiohttp
import grpc
import pytest

from relayminer.chain.sim.node.node import LocalNode
from relayminer.proto import (
    cosmos_auth_pb2,
    cosmos_auth_pb2_grpc,
    cosmos_bank_pb2,
    cosmos_bank_pb2_grpc,
    cosmos_query_pb2,
    cosmos_tx_service_pb2,
    cosmos_tx_service_pb2_grpc,
    pocket_application_pb2,
    pocket_application_pb2_grpc,
    pocket_proof_pb2,
    pocket_proof_pb2_grpc,
    pocket_service_pb2,
    pocket_service_pb2_grpc,
    pocket_session_pb2,
    pocket_session_pb2_grpc,
    pocket_shared_pb2,
    pocket_shared_pb2_grpc,
    pocket_supplier_pb2,
    pocket_supplier_pb2_grpc,
)
from tests.localnet.support import APP, CUPR, STRANGER, SUPPLIER, SUPPLIER2

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT
INTERNAL = grpc.StatusCode.INTERNAL


async def fails(call: Any, code: grpc.StatusCode, text: str = "") -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    assert text in str(info.value.details())


async def test_every_query(node: LocalNode, channel: grpc.aio.Channel) -> None:
    await node.produce_block()  # height 2
    shared = pocket_shared_pb2_grpc.QueryStub(channel)
    call = shared.Params(pocket_shared_pb2.QueryParamsRequest())
    params = (await call).params
    assert params.num_blocks_per_session == 4 and params.claim_window_close_offset_blocks == 2
    assert (await call.initial_metadata())["x-cosmos-block-height"] == "2"
    at = await shared.ParamsAtHeight(pocket_shared_pb2.QueryParamsAtHeightRequest(height=1))
    assert at.params == params
    await fails(
        shared.ParamsAtHeight(pocket_shared_pb2.QueryParamsAtHeightRequest(height=-1)), INVALID
    )
    await fails(
        shared.Params(
            pocket_shared_pb2.QueryParamsRequest(), metadata=(("x-cosmos-block-height", "99"),)
        ),
        INVALID,
        "height in the future",
    )

    sessions = pocket_session_pb2_grpc.QueryStub(channel)
    assert (
        await sessions.Params(pocket_session_pb2.QueryParamsRequest())
    ).params.num_suppliers_per_session == 50
    session = (
        await sessions.GetSession(
            pocket_session_pb2.QueryGetSessionRequest(
                application_address=APP.address, service_id="anvil", block_height=2
            )
        )
    ).session
    assert (
        session.header.session_start_block_height == 1
        and session.header.session_end_block_height == 4
    )
    assert session.session_id == session.header.session_id and session.session_number == 1
    assert sorted(s.operator_address for s in session.suppliers) == sorted(
        [SUPPLIER.address, SUPPLIER2.address]
    )
    assert session.application.address == APP.address
    for bad in (
        {"application_address": APP.address, "service_id": "anvil", "block_height": 50},
        {"application_address": STRANGER.address, "service_id": "anvil", "block_height": 1},
        {"application_address": APP.address, "service_id": "nope", "block_height": 1},
    ):
        await fails(sessions.GetSession(pocket_session_pb2.QueryGetSessionRequest(**bad)), INTERNAL)

    apps = pocket_application_pb2_grpc.QueryStub(channel)
    app = (
        await apps.Application(
            pocket_application_pb2.QueryGetApplicationRequest(address=APP.address)
        )
    ).application
    assert [c.service_id for c in app.service_configs] == ["anvil"] and app.stake.denom == "upokt"
    await fails(
        apps.Application(
            pocket_application_pb2.QueryGetApplicationRequest(address=STRANGER.address)
        ),
        NOT_FOUND,
    )
    await fails(
        apps.Application(pocket_application_pb2.QueryGetApplicationRequest(address="bad")), INVALID
    )

    suppliers = pocket_supplier_pb2_grpc.QueryStub(channel)
    sup = (
        await suppliers.Supplier(
            pocket_supplier_pb2.QueryGetSupplierRequest(operator_address=SUPPLIER.address)
        )
    ).supplier
    assert sup.operator_address == SUPPLIER.address and sup.services[0].service_id == "anvil"
    await fails(
        suppliers.Supplier(
            pocket_supplier_pb2.QueryGetSupplierRequest(operator_address=STRANGER.address)
        ),
        NOT_FOUND,
    )

    proofs = pocket_proof_pb2_grpc.QueryStub(channel)
    pp = (await proofs.Params(pocket_proof_pb2.QueryParamsRequest())).params
    assert (
        pp.proof_requirement_threshold.amount == "0" and pp.proof_missing_penalty.denom == "upokt"
    )
    await fails(
        proofs.Claim(
            pocket_proof_pb2.QueryGetClaimRequest(
                session_id="abc", supplier_operator_address=SUPPLIER.address
            )
        ),
        NOT_FOUND,
        "claim not found",
    )
    await fails(
        proofs.Claim(
            pocket_proof_pb2.QueryGetClaimRequest(
                session_id="", supplier_operator_address=SUPPLIER.address
            )
        ),
        INVALID,
    )
    page = await proofs.AllClaims(
        pocket_proof_pb2.QueryAllClaimsRequest(
            session_end_height=4, pagination=cosmos_query_pb2.PageRequest(count_total=True)
        )
    )
    assert (
        list(page.claims) == [] and page.pagination.next_key == b"" and page.pagination.total == 0
    )
    await fails(
        proofs.AllClaims(
            pocket_proof_pb2.QueryAllClaimsRequest(
                pagination=cosmos_query_pb2.PageRequest(key=b"k", offset=1)
            )
        ),
        INVALID,
    )
    await fails(
        proofs.Proof(
            pocket_proof_pb2.QueryGetProofRequest(
                session_id="abc", supplier_operator_address=SUPPLIER.address
            )
        ),
        NOT_FOUND,
    )
    assert list((await proofs.AllProofs(pocket_proof_pb2.QueryAllProofsRequest())).proofs) == []

    services = pocket_service_pb2_grpc.QueryStub(channel)
    assert (
        await services.Params(pocket_service_pb2.QueryParamsRequest())
    ).params.target_num_relays == 10_000
    svc = (await services.Service(pocket_service_pb2.QueryGetServiceRequest(id="anvil"))).service
    assert (svc.id, svc.name, svc.compute_units_per_relay) == ("anvil", "Anvil", CUPR)
    await fails(services.Service(pocket_service_pb2.QueryGetServiceRequest(id="nope")), NOT_FOUND)
    await fails(services.Service(pocket_service_pb2.QueryGetServiceRequest(id="")), INVALID)
    diff = (
        await services.RelayMiningDifficultyAtHeight(
            pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightRequest(
                serviceId="anvil", blockHeight=2
            )
        )
    ).relayMiningDifficulty
    assert diff.target_hash == b"\xff" * 32 and diff.block_height == 2
    latest = await services.RelayMiningDifficulty(
        pocket_service_pb2.QueryGetRelayMiningDifficultyRequest(serviceId="anvil")
    )
    assert latest.relayMiningDifficulty.num_relays_ema == 10_000
    await fails(
        services.RelayMiningDifficultyAtHeight(
            pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightRequest(
                serviceId="anvil", blockHeight=-1
            )
        ),
        INVALID,
    )
    history = await services.RelayMiningDifficultyHistory(
        pocket_service_pb2.QueryGetRelayMiningDifficultyHistoryRequest(serviceId="anvil")
    )
    assert len(history.relayMiningDifficultyHistory) == 1
    cupr = await services.ComputeUnitsPerRelayAtHeight(
        pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightRequest(
            serviceId="anvil", blockHeight=1
        )
    )
    assert cupr.computeUnitsPerRelay == CUPR
    cupr_history = await services.ComputeUnitsPerRelayHistory(
        pocket_service_pb2.QueryGetComputeUnitsPerRelayHistoryRequest(serviceId="anvil")
    )
    assert cupr_history.computeUnitsPerRelayHistory[0].compute_units_per_relay == CUPR
    await fails(
        services.ComputeUnitsPerRelayAtHeight(
            pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightRequest(
                serviceId="nope", blockHeight=1
            )
        ),
        NOT_FOUND,
    )

    auth = cosmos_auth_pb2_grpc.QueryStub(channel)
    acc = (
        await auth.Account(cosmos_auth_pb2.QueryAccountRequest(address=SUPPLIER2.address))
    ).account
    base = cosmos_auth_pb2.BaseAccount.FromString(acc.value)
    assert (base.address, base.account_number, base.sequence) == (SUPPLIER2.address, 1, 0)
    assert not base.HasField("pub_key")  # no tx yet
    await fails(
        auth.Account(cosmos_auth_pb2.QueryAccountRequest(address=STRANGER.address)), NOT_FOUND
    )
    await fails(auth.Account(cosmos_auth_pb2.QueryAccountRequest(address="pokt1nope")), INVALID)
    bank = cosmos_bank_pb2_grpc.QueryStub(channel)
    bal = await bank.Balance(
        cosmos_bank_pb2.QueryBalanceRequest(address=STRANGER.address, denom="upokt")
    )
    assert (bal.balance.denom, bal.balance.amount) == ("upokt", "0")
    await fails(
        bank.Balance(cosmos_bank_pb2.QueryBalanceRequest(address=SUPPLIER.address)), INVALID
    )

    txs = cosmos_tx_service_pb2_grpc.ServiceStub(channel)
    await fails(
        txs.GetTx(cosmos_tx_service_pb2.GetTxRequest(hash="AB" * 32)), NOT_FOUND, "tx not found"
    )
    await fails(
        txs.BroadcastTx(
            cosmos_tx_service_pb2.BroadcastTxRequest(
                tx_bytes=b"x", mode=cosmos_tx_service_pb2.BROADCAST_MODE_BLOCK
            )
        ),
        INVALID,
    )
    events = await txs.GetTxsEvent(
        cosmos_tx_service_pb2.GetTxsEventRequest(
            query="message.action='/pocket.proof.MsgCreateClaim'",
            order_by=cosmos_tx_service_pb2.ORDER_BY_DESC,
            limit=1,
        )
    )
    assert events.total == 0


async def test_abci_query_maps_grpc_status(node: LocalNode, http: aiohttp.ClientSession) -> None:
    async def abci(path: str, data: bytes) -> Any:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "abci_query",
            "params": {"path": path, "data": data.hex(), "height": "0"},
        }
        async with http.post("/", json=body) as response:
            return (await response.json())["result"]["response"]

    ok = await abci(
        "/pocket.service.Query/Service",
        pocket_service_pb2.QueryGetServiceRequest(id="anvil").SerializeToString(),
    )
    assert ok["height"] == "1" and "code" not in ok
    import base64

    assert (
        pocket_service_pb2.QueryGetServiceResponse.FromString(
            base64.b64decode(ok["value"])
        ).service.id
        == "anvil"
    )
    missing = await abci(
        "/pocket.proof.Query/Claim",
        pocket_proof_pb2.QueryGetClaimRequest(
            session_id="s", supplier_operator_address=SUPPLIER.address
        ).SerializeToString(),
    )
    assert (missing["code"], missing["codespace"]) == (22, "sdk")
    assert missing["log"].startswith("rpc error: code = NotFound desc = ")
    invalid = await abci(
        "/pocket.shared.Query/ParamsAtHeight",
        pocket_shared_pb2.QueryParamsAtHeightRequest(height=-5).SerializeToString(),
    )
    assert invalid["code"] == 18
    internal = await abci(
        "/pocket.session.Query/GetSession",
        pocket_session_pb2.QueryGetSessionRequest(
            application_address=STRANGER.address, service_id="anvil"
        ).SerializeToString(),
    )
    assert internal["code"] == 6
    unknown = await abci("/nope.Query/X", b"")
    assert unknown["code"] == 6
