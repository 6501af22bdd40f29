"""Transactions over the wire: a claim's whole path, one rejection per code, handler failures."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import grpc
import pytest

from relayminer.chain.base import MsgCreateClaim, SessionHeader
from relayminer.chain.sim.node.node import LocalNode
from relayminer.proto import (
    cosmos_auth_pb2,
    cosmos_auth_pb2_grpc,
    cosmos_bank_pb2,
    cosmos_bank_pb2_grpc,
    cosmos_tx_service_pb2,
    cosmos_tx_service_pb2_grpc,
    pocket_proof_pb2,
    pocket_proof_pb2_grpc,
    pocket_session_pb2,
    pocket_session_pb2_grpc,
)
from tests.localnet.support import APP, STRANGER, SUPPLIER, SUPPLIER2, claim_msg, sign_tx

SYNC = cosmos_tx_service_pb2.BROADCAST_MODE_SYNC


async def advance_to(node: LocalNode, height: int) -> None:
    while (await node.app.chain.latest_block()).height < height:
        await node.produce_block()


async def session_header(channel: grpc.aio.Channel) -> SessionHeader:
    stub = pocket_session_pb2_grpc.QueryStub(channel)
    req = pocket_session_pb2.QueryGetSessionRequest(
        application_address=APP.address, service_id="anvil", block_height=1
    )
    header: SessionHeader = (await stub.GetSession(req)).session.header
    return header


async def broadcast(channel: grpc.aio.Channel, raw: bytes) -> Any:
    stub = cosmos_tx_service_pb2_grpc.ServiceStub(channel)
    req = cosmos_tx_service_pb2.BroadcastTxRequest(tx_bytes=raw, mode=SYNC)
    return (await stub.BroadcastTx(req)).tx_response


async def rpc(http: aiohttp.ClientSession, method: str, **params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with http.post("/", json=body) as response:
        return await response.json()


async def block_time_ns(node: LocalNode) -> int:
    return round((await node.app.chain.latest_block()).time_unix * 1000) * 1_000_000


async def test_claim_lands_then_expires_without_proof(
    node: LocalNode, channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    await advance_to(node, 7)  # session 1 = blocks 1..4, claim window closes at 8
    header = await session_header(channel)
    raw = sign_tx(SUPPLIER, [claim_msg(SUPPLIER.address, header)], account_number=0, sequence=0)
    answer = await broadcast(channel, raw)
    assert (answer.code, answer.height) == (0, 0)
    assert answer.txhash == node.app.store.hash_of(raw)
    assert (await node.produce_block()).height == 8

    results = (await rpc(http, "block_results", height="8"))["result"]
    assert results["height"] == "8"
    (tx_result,) = results["txs_results"]
    assert "code" not in tx_result and "codespace" not in tx_result  # omitempty
    assert tx_result["gas_wanted"] == "400000" and int(tx_result["gas_used"]) > 0
    types = [e["type"] for e in tx_result["events"]]
    assert "pocket.proof.EventClaimCreated" in types and "message" in types
    created = next(e for e in tx_result["events"] if e["type"] == "pocket.proof.EventClaimCreated")
    attrs = {a["key"]: a["value"] for a in created["attributes"]}
    assert attrs["num_relays"] == '"3"' and attrs["claim_proof_status_int"] == "0"
    assert attrs["supplier_operator_address"] == f'"{SUPPLIER.address}"'
    assert attrs["msg_index"] == "0"
    block = (await rpc(http, "block", height="8"))["result"]
    assert block["block"]["data"]["txs"] == [base64.b64encode(raw).decode()]

    tx_stub = cosmos_tx_service_pb2_grpc.ServiceStub(channel)
    got = await tx_stub.GetTx(cosmos_tx_service_pb2.GetTxRequest(hash=answer.txhash))
    assert (got.tx_response.height, got.tx_response.code) == (8, 0)
    assert got.tx.body.messages[0].type_url == "/pocket.proof.MsgCreateClaim"
    on_rpc = await rpc(http, "tx", hash=base64.b64encode(bytes.fromhex(answer.txhash)).decode())
    assert on_rpc["result"]["height"] == "8" and on_rpc["result"]["index"] == 0

    proof_stub = pocket_proof_pb2_grpc.QueryStub(channel)
    claims = await proof_stub.AllClaims(
        pocket_proof_pb2.QueryAllClaimsRequest(supplier_operator_address=SUPPLIER.address)
    )
    assert [c.session_header.session_id for c in claims.claims] == [header.session_id]
    auth = cosmos_auth_pb2_grpc.QueryStub(channel)
    account = (
        await auth.Account(cosmos_auth_pb2.QueryAccountRequest(address=SUPPLIER.address))
    ).account
    base = cosmos_auth_pb2.BaseAccount.FromString(account.value)
    assert account.type_url == "/cosmos.auth.v1beta1.BaseAccount"
    assert (base.account_number, base.sequence) == (0, 1) and base.HasField("pub_key")
    bank = cosmos_bank_pb2_grpc.QueryStub(channel)
    balance = await bank.Balance(
        cosmos_bank_pb2.QueryBalanceRequest(address=SUPPLIER.address, denom="upokt")
    )
    assert balance.balance.amount == str(1_000_000 - 4000)

    # proofs are always required here and none comes: settlement (block 11) expires the claim
    await advance_to(node, 11)
    final = (await rpc(http, "block_results", height="11"))["result"]["finalize_block_events"]
    expired = next(e for e in final if e["type"] == "pocket.tokenomics.EventClaimExpired")
    attrs = {a["key"]: a["value"] for a in expired["attributes"]}
    assert attrs["expiration_reason"] == '"PROOF_MISSING"' and attrs["mode"] == "EndBlock"
    assert attrs["session_end_block_height"] == '"4"'
    assert any(e["type"] == "pocket.tokenomics.EventSupplierSlashed" for e in final)


async def test_claim_outside_its_window_fails_in_deliver_tx(
    node: LocalNode, channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    await advance_to(node, 8)  # the claim would land in block 9 > claim window close 8
    header = await session_header(channel)
    raw = sign_tx(SUPPLIER, [claim_msg(SUPPLIER.address, header)], account_number=0)
    assert (await broadcast(channel, raw)).code == 0  # CheckTx does not run handlers
    await node.produce_block()
    (result,) = (await rpc(http, "block_results", height="9"))["result"]["txs_results"]
    assert result["code"] == 1 and result["codespace"] == "undefined"
    assert result["log"].startswith(
        "failed to execute message; message index: 0: rpc error: code = FailedPrecondition desc = "
    )
    assert "claim attempted outside of the session's claim window" in result["log"]
    # Simulate runs at the last committed height (9 now): the handler's failure, as gRPC Unknown
    stub = cosmos_tx_service_pb2_grpc.ServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Simulate(
            cosmos_tx_service_pb2.SimulateRequest(
                tx_bytes=sign_tx(
                    SUPPLIER, [claim_msg(SUPPLIER.address, header)], account_number=0, sequence=1
                )
            )
        )
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert "claim attempted outside of the session's claim window" in str(info.value.details())
    assert "With gas wanted: '400000' and gas used: '" in str(info.value.details())

    # the fee and the sequence are spent all the same, as on a real chain
    auth = cosmos_auth_pb2_grpc.QueryStub(channel)
    account = (
        await auth.Account(cosmos_auth_pb2.QueryAccountRequest(address=SUPPLIER.address))
    ).account
    assert cosmos_auth_pb2.BaseAccount.FromString(account.value).sequence == 1


async def test_simulate_reports_gas(node: LocalNode, channel: grpc.aio.Channel) -> None:
    await advance_to(node, 6)
    header = await session_header(channel)
    raw = sign_tx(
        SUPPLIER, [claim_msg(SUPPLIER.address, header)], account_number=0, gas_limit=0, fee_upokt=0
    )
    stub = cosmos_tx_service_pb2_grpc.ServiceStub(channel)
    answer = await stub.Simulate(cosmos_tx_service_pb2.SimulateRequest(tx_bytes=raw))
    assert answer.gas_info.gas_used > 60_000
    assert [r.type_url for r in answer.result.msg_responses] == [
        "/pocket.proof.MsgCreateClaimResponse"
    ]


async def test_one_rejection_per_code(
    node: LocalNode, channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    await advance_to(node, 6)
    header = await session_header(channel)
    claim = claim_msg(SUPPLIER.address, header)
    now = await block_time_ns(node)

    def unordered(memo: str, timeout: int) -> bytes:
        return sign_tx(
            SUPPLIER,
            [claim],
            account_number=0,
            unordered=True,
            timeout_unix_nanos=timeout,
            memo=memo,
        )

    bad_root = MsgCreateClaim(supplier_operator_address=SUPPLIER.address, root_hash=b"short")
    bad_root.session_header.CopyFrom(header)
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("undecodable", b"\xff\x00 not a tx", "sdk", 2, "tx parse error"),
        (
            "wrong chain id",
            sign_tx(SUPPLIER, [claim], account_number=0, chain_id="pocket-beta"),
            "sdk",
            4,
            "signature verification failed",
        ),
        (
            "wrong account number",
            sign_tx(SUPPLIER, [claim], account_number=3),
            "sdk",
            4,
            "unauthorized",
        ),
        (
            "poor signer",
            sign_tx(SUPPLIER2, [claim_msg(SUPPLIER2.address, header)], account_number=1),
            "sdk",
            5,
            "insufficient funds",
        ),
        (
            "no pubkey yet",
            sign_tx(SUPPLIER, [claim], account_number=0, include_pubkey=False),
            "sdk",
            8,
            "pubkey on account is not set",
        ),
        (
            "unknown account",
            sign_tx(STRANGER, [claim_msg(STRANGER.address, header)], account_number=0),
            "sdk",
            9,
            "does not exist: unknown address",
        ),
        (
            "fee too low",
            sign_tx(SUPPLIER, [claim], account_number=0, fee_upokt=1),
            "sdk",
            13,
            "insufficient fees; got: 1upokt required: 4000upokt",
        ),
        (
            "unordered ttl",
            unordered("ttl", now + 11 * 60 * 10**9),
            "sdk",
            18,
            "unordered tx ttl exceeds 10m0s",
        ),
        (
            "unordered no timeout",
            unordered("none", 0),
            "sdk",
            18,
            "must have timeout_timestamp set",
        ),
        (
            "timeout passed",
            sign_tx(SUPPLIER, [claim], account_number=0, timeout_unix_nanos=now - 10**9),
            "sdk",
            42,
            "tx timeout",
        ),
        (
            "wrong sequence",
            sign_tx(SUPPLIER, [claim], account_number=0, sequence=5),
            "sdk",
            32,
            "account sequence mismatch, expected 0, got 5",
        ),
        (
            "bad root",
            sign_tx(SUPPLIER, [bad_root], account_number=0),
            "proof",
            1104,
            "invalid root hash",
        ),
        (
            "out of gas",
            sign_tx(SUPPLIER, [claim], account_number=0, gas_limit=100, fee_upokt=1),
            "sdk",
            11,
            "out of gas",
        ),
    ]
    for name, raw, codespace, code, text in cases:
        answer = await broadcast(channel, raw)
        assert (answer.codespace, answer.code) == (codespace, code), (name, answer.raw_log)
        assert text in answer.raw_log, (name, answer.raw_log)
        assert answer.txhash == node.app.store.hash_of(raw)

    first = unordered("first", now + 60 * 10**9)
    assert (await broadcast(channel, first)).code == 0
    dup_nonce = await broadcast(channel, unordered("second", now + 60 * 10**9))
    assert (dup_nonce.code, dup_nonce.codespace) == (18, "sdk")
    assert "failed to add unordered nonce: already used timeout" in dup_nonce.raw_log
    again = await broadcast(channel, first)
    assert (again.code, again.codespace) == (19, "sdk")
    over_rpc = await rpc(http, "broadcast_tx_sync", tx=base64.b64encode(first).decode())
    assert over_rpc["error"]["code"] == -32603
    assert over_rpc["error"]["data"] == "tx already exists in cache"

    # an ordered tx after the unordered one: sequence 0 is still expected
    ordered = sign_tx(SUPPLIER, [claim], account_number=0, sequence=0, memo="ordered")
    check = await rpc(http, "broadcast_tx_sync", tx=base64.b64encode(ordered).decode())
    assert check["result"]["code"] == 0 and check["result"]["hash"] == node.app.store.hash_of(
        ordered
    )
    replay = sign_tx(SUPPLIER, [claim], account_number=0, sequence=0, memo="replayed seq")
    refused = await rpc(http, "broadcast_tx_sync", tx=base64.b64encode(replay).decode())
    assert refused["result"]["code"] == 32 and refused["result"]["codespace"] == "sdk"
    # everything accepted lands in the next block, in order
    await node.produce_block()
    results = (await rpc(http, "block_results", height="7"))["result"]["txs_results"]
    assert [r.get("code", 0) for r in results] == [0, 0]
