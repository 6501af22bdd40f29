"""Event encoding (spec'd by poktroll's event protos): settlement events over the wire, and the
pure encoder's handling of every simulator event type."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import grpc

from relayminer.chain.base import ChainEvent
from relayminer.chain.sim.node.events import EventContext, encode_block_events
from relayminer.chain.sim.node.node import LocalNode
from relayminer.proto import (
    cosmos_tx_service_pb2,
    cosmos_tx_service_pb2_grpc,
    pocket_session_pb2,
    pocket_session_pb2_grpc,
)
from tests.conftest import RedisBackend
from tests.localnet.support import APP, SUPPLIER, claim_msg, make_config, sign_tx

CLAIM = {
    "supplier_operator_address": "pokt1sup",
    "application_address": "pokt1app",
    "service_id": "anvil",
    "session_id": "s1",
    "session_end_block_height": "4",
    "num_relays": "3",
    "claimed_compute_units": "30",
    "estimated_compute_units": "30",
    "num_estimated_relays": "3",
    "claimed_upokt": "30",
}


def attrs(event: Any) -> dict[str, str]:
    return {a["key"]: a["value"] for a in event["attributes"]}


async def test_settled_claim_events_over_the_wire(backend: RedisBackend) -> None:
    never = {"proof_requirement_threshold_upokt": 10**15, "proof_request_probability": 0.0}
    node = LocalNode(backend.client, make_config(proof_params=never), produce_blocks=False)
    endpoints = await node.start()
    try:
        for _ in range(6):
            await node.produce_block()  # height 7
        async with grpc.aio.insecure_channel(endpoints.grpc) as channel:
            session = await pocket_session_pb2_grpc.QueryStub(channel).GetSession(
                pocket_session_pb2.QueryGetSessionRequest(
                    application_address=APP.address, service_id="anvil", block_height=1
                )
            )
            raw = sign_tx(
                SUPPLIER, [claim_msg(SUPPLIER.address, session.session.header)], account_number=0
            )
            answer = await cosmos_tx_service_pb2_grpc.ServiceStub(channel).BroadcastTx(
                cosmos_tx_service_pb2.BroadcastTxRequest(
                    tx_bytes=raw, mode=cosmos_tx_service_pb2.BROADCAST_MODE_SYNC
                )
            )
            assert answer.tx_response.code == 0
        for _ in range(4):
            await node.produce_block()  # 8 (claim) .. 11 (settlement)
        body = {"jsonrpc": "2.0", "id": 1, "method": "block_results", "params": {"height": "11"}}
        async with aiohttp.ClientSession() as http, http.post(endpoints.rpc, json=body) as r:
            final = (await r.json())["result"]["finalize_block_events"]
        settled = attrs(
            next(e for e in final if e["type"] == "pocket.tokenomics.EventClaimSettled")
        )
        assert settled["mode"] == "EndBlock" and settled["proof_requirement_int"] == "0"
        assert settled["num_relays"] == '"3"' and settled["claimed_upokt"] == '"30upokt"'
        reward = json.loads(settled["reward_distribution"])
        assert list(reward) == [SUPPLIER.address] and reward[SUPPLIER.address].endswith("upokt")
        assert json.loads(settled["session_id"]) == session.session.session_id
    finally:
        await node.stop()


def test_every_simulator_event_type_is_encoded() -> None:
    events = [
        ChainEvent(9, "EventClaimCreated", CLAIM),  # a message event: not a block event
        ChainEvent(9, "EventTxFailed", {"tx_hash": "AB", "log": "x"}),  # simulator-only
        ChainEvent(
            9,
            "EventProofValidityChecked",
            {
                "supplier_operator_address": "pokt1sup",
                "session_id": "s1",
                "proof_validation_status": "INVALID",
                "failure_reason": "bad path",
            },
        ),
        ChainEvent(9, "EventClaimExpired", {**CLAIM, "expiration_reason": "PROOF_INVALID"}),
        ChainEvent(
            9,
            "EventSupplierSlashed",
            {
                "supplier_operator_address": "pokt1sup",
                "session_id": "s1",
                "slashed_upokt": "7",
                "reason": "PROOF_INVALID",
            },
        ),
        ChainEvent(9, "EventClaimDiscarded", {**CLAIM, "error": "claimed amount is zero"}),
        ChainEvent(
            9,
            "EventApplicationOverserviced",
            {
                "application_address": "pokt1app",
                "supplier_operator_address": "pokt1sup",
                "expected_burn_upokt": "30",
                "effective_burn_upokt": "20",
            },
        ),
        ChainEvent(9, "EventClaimSettled", {**CLAIM, "proof_requirement_int": "1"}),
        ChainEvent(9, "EventSomethingNew", {"b": "2", "a": "1"}),
    ]
    out = [
        e.to_json()
        for e in encode_block_events(events, EventContext(supplier_stakes={"pokt1sup": 93}))
    ]
    types = [e["type"] for e in out]
    assert types == [
        "pocket.proof.EventProofValidityChecked",
        "pocket.tokenomics.EventClaimExpired",
        "pocket.tokenomics.EventSupplierSlashed",
        "pocket.tokenomics.EventClaimDiscarded",
        "pocket.tokenomics.EventApplicationOverserviced",
        "pocket.tokenomics.EventClaimSettled",
        "relayminer.sim.EventSomethingNew",
    ]
    checked, expired, slashed, discarded, overserviced, settled, new = (attrs(e) for e in out)
    assert checked["claim_proof_status_int"] == "2" and checked["block_height"] == '"9"'
    assert (
        expired["expiration_reason"] == '"PROOF_INVALID"'
        and expired["claim_proof_status_int"] == "2"
    )
    assert (
        slashed["proof_missing_penalty"] == '"7upokt"'
        and slashed["session_end_block_height"] == '"4"'
    )
    assert slashed["supplier_stake_after_slash"] == '"93upokt"'
    assert discarded["error"] == '"claimed amount is zero"'
    assert overserviced["effective_burn"] == '"20upokt"' and overserviced["service_id"] == '"anvil"'
    assert settled["claim_proof_status_int"] == "1"
    assert list(new) == ["a", "b", "mode"]
    for event in out:  # keys sorted, the EndBlock mode last
        keys = [a["key"] for a in event["attributes"]]
        assert keys[:-1] == sorted(keys[:-1]) and keys[-1] == "mode"
