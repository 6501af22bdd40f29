"""In-process test doubles on 127.0.0.1: a gRPC Pocket node (grpc.aio) and a CometBFT RPC
server (aiohttp, HTTP + websocket). Small and explicit: each test sets the state it needs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import coincurve
import grpc
from aiohttp import web

from relayminer.proto import (
    cosmos_abci_pb2,
    cosmos_auth_pb2,
    cosmos_auth_pb2_grpc,
    cosmos_bank_pb2,
    cosmos_bank_pb2_grpc,
    cosmos_base_pb2,
    cosmos_crypto_secp256k1_pb2,
    cosmos_query_pb2,
    cosmos_tx_pb2,
    cosmos_tx_service_pb2,
    cosmos_tx_service_pb2_grpc,
    pocket_proof_pb2,
    pocket_proof_pb2_grpc,
    pocket_service_pb2,
    pocket_service_pb2_grpc,
    pocket_session_pb2,
    pocket_session_pb2_grpc,
    pocket_shared_pb2,
    pocket_shared_pb2_grpc,
    poktroll_pb2,
)

Ctx = grpc.aio.ServicerContext


@dataclass
class NodeState:
    """What the fake node knows; tests edit it directly."""

    chain_id: str = "pocket"
    shared: pocket_shared_pb2.Params = field(
        default_factory=lambda: pocket_shared_pb2.Params(
            num_blocks_per_session=10,
            grace_period_end_offset_blocks=1,
            claim_window_open_offset_blocks=1,
            claim_window_close_offset_blocks=4,
            proof_window_open_offset_blocks=0,
            proof_window_close_offset_blocks=4,
            compute_units_to_tokens_multiplier=42_000_000,
            compute_unit_cost_granularity=1_000_000,
            session_grid_anchor_height=1,
            session_number_at_anchor=1,
        )
    )
    cupr: dict[str, int] = field(default_factory=lambda: {"anvil": 1})
    accounts: dict[str, int] = field(default_factory=dict)  # address -> account number
    balances: dict[str, int] = field(default_factory=dict)
    claims: dict[tuple[str, str], poktroll_pb2.Claim] = field(default_factory=dict)
    sessions: dict[tuple[str, str, int], pocket_session_pb2.Session] = field(default_factory=dict)
    gas_used: int = 120_000
    simulate_error: str | None = None  # text of a gRPC Unknown from Simulate
    broadcast_code: tuple[str, int, str] | None = None  # (codespace, code, log)
    page_limit: int = 2
    received: list[cosmos_tx_pb2.TxRaw] = field(default_factory=list)
    heights_seen: list[str] = field(default_factory=list)  # x-cosmos-block-height metadata
    stall: asyncio.Event | None = None  # when set-able: every call waits on it


def verify_tx(raw: cosmos_tx_pb2.TxRaw, chain_id: str, account_number: int) -> bool:
    """The node-side signature check: sha256 over the SignDoc of the received bytes."""
    auth = cosmos_tx_pb2.AuthInfo.FromString(raw.auth_info_bytes)
    pub = cosmos_crypto_secp256k1_pb2.PubKey.FromString(auth.signer_infos[0].public_key.value)
    doc = cosmos_tx_pb2.SignDoc(
        body_bytes=raw.body_bytes,
        auth_info_bytes=raw.auth_info_bytes,
        chain_id=chain_id,
        account_number=account_number,
    ).SerializeToString()
    sig = raw.signatures[0]
    der = coincurve.PublicKey(pub.key)
    compact = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
    return len(sig) == 64 and der.verify(compact, doc)


class FakeNode(
    pocket_shared_pb2_grpc.QueryServicer,
    pocket_service_pb2_grpc.QueryServicer,
    pocket_session_pb2_grpc.QueryServicer,
    pocket_proof_pb2_grpc.QueryServicer,
    cosmos_auth_pb2_grpc.QueryServicer,
    cosmos_bank_pb2_grpc.QueryServicer,
    cosmos_tx_service_pb2_grpc.ServiceServicer,
):
    """gRPC servicers over :class:`NodeState` (unimplemented methods answer UNIMPLEMENTED)."""

    def __init__(self, state: NodeState) -> None:
        self.state = state

    async def _gate(self, context: Ctx) -> None:
        for key, value in context.invocation_metadata() or ():
            if key == "x-cosmos-block-height":
                self.state.heights_seen.append(value)
        if self.state.stall is not None:
            await self.state.stall.wait()

    # pocket.shared.Query
    async def Params(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if isinstance(request, pocket_shared_pb2.QueryParamsRequest):
            return pocket_shared_pb2.QueryParamsResponse(params=self.state.shared)
        if isinstance(request, pocket_proof_pb2.QueryParamsRequest):
            coin = cosmos_base_pb2.Coin
            return pocket_proof_pb2.QueryParamsResponse(
                params=pocket_proof_pb2.Params(
                    proof_request_probability=0.25,
                    proof_requirement_threshold=coin(denom="upokt", amount="20000000"),
                    proof_missing_penalty=coin(denom="upokt", amount="320000000"),
                    proof_submission_fee=coin(denom="upokt", amount="1000000"),
                )
            )
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no such params")
        raise AssertionError

    async def ParamsAtHeight(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if request.height < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative height")
        return pocket_shared_pb2.QueryParamsAtHeightResponse(params=self.state.shared)

    # pocket.service.Query
    async def ComputeUnitsPerRelayAtHeight(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if request.serviceId not in self.state.cupr:
            await context.abort(grpc.StatusCode.NOT_FOUND, "service not found")
        return pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightResponse(
            computeUnitsPerRelay=self.state.cupr[request.serviceId]
        )

    async def RelayMiningDifficultyAtHeight(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if request.serviceId not in self.state.cupr:
            await context.abort(grpc.StatusCode.NOT_FOUND, "service not found")
        return pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightResponse(
            relayMiningDifficulty=pocket_service_pb2.RelayMiningDifficulty(
                service_id=request.serviceId,
                block_height=request.blockHeight,
                target_hash=b"\xff" * 32,
            )
        )

    # pocket.session.Query
    async def GetSession(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        key = (request.application_address, request.service_id, request.block_height)
        session = self.state.sessions.get(key)
        if session is None:
            await context.abort(grpc.StatusCode.INTERNAL, "application not found")
        return pocket_session_pb2.QueryGetSessionResponse(session=session)

    # pocket.proof.Query
    async def Claim(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        claim = self.state.claims.get((request.supplier_operator_address, request.session_id))
        if claim is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "claim not found")
        return pocket_proof_pb2.QueryGetClaimResponse(claim=claim)

    async def AllClaims(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        mine = sorted(
            (
                c
                for (s, _), c in self.state.claims.items()
                if s == request.supplier_operator_address
            ),
            key=lambda c: c.session_header.session_id,
        )
        start = int(request.pagination.key or b"0")
        page = mine[start : start + self.state.page_limit]
        nxt = start + self.state.page_limit
        return pocket_proof_pb2.QueryAllClaimsResponse(
            claims=page,
            pagination=cosmos_query_pb2.PageResponse(
                next_key=str(nxt).encode() if nxt < len(mine) else b""
            ),
        )

    # cosmos.auth / bank
    async def Account(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if request.address not in self.state.accounts:
            await context.abort(grpc.StatusCode.NOT_FOUND, "account not found")
        account = cosmos_auth_pb2.QueryAccountResponse()
        account.account.Pack(
            cosmos_auth_pb2.BaseAccount(
                address=request.address,
                account_number=self.state.accounts[request.address],
                sequence=3,
            ),
            type_url_prefix="/",
        )
        return account

    async def Balance(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        amount = self.state.balances.get(request.address, 0)
        return cosmos_bank_pb2.QueryBalanceResponse(
            balance=cosmos_base_pb2.Coin(denom=request.denom, amount=str(amount))
        )

    # cosmos.tx.v1beta1.Service
    async def Simulate(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        if self.state.simulate_error is not None:
            await context.abort(grpc.StatusCode.UNKNOWN, self.state.simulate_error)
        return cosmos_tx_service_pb2.SimulateResponse(
            gas_info=cosmos_abci_pb2.GasInfo(gas_used=self.state.gas_used)
        )

    async def BroadcastTx(self, request: Any, context: Ctx) -> Any:
        await self._gate(context)
        raw = cosmos_tx_pb2.TxRaw.FromString(request.tx_bytes)
        self.state.received.append(raw)
        txhash = hashlib.sha256(request.tx_bytes).hexdigest().upper()
        if self.state.broadcast_code is not None:
            codespace, code, log = self.state.broadcast_code
            return cosmos_tx_service_pb2.BroadcastTxResponse(
                tx_response=cosmos_abci_pb2.TxResponse(
                    txhash=txhash, codespace=codespace, code=code, raw_log=log
                )
            )
        body = cosmos_tx_pb2.TxBody.FromString(raw.body_bytes)
        for any_msg in body.messages:
            if any_msg.type_url == "/pocket.proof.MsgCreateClaim":
                msg = poktroll_pb2.MsgCreateClaim.FromString(any_msg.value)
                self.state.claims[
                    (msg.supplier_operator_address, msg.session_header.session_id)
                ] = poktroll_pb2.Claim(
                    supplier_operator_address=msg.supplier_operator_address,
                    session_header=msg.session_header,
                    root_hash=msg.root_hash,
                )
            elif any_msg.type_url == "/pocket.proof.MsgSubmitProof":
                proof = poktroll_pb2.MsgSubmitProof.FromString(any_msg.value)
                key = (proof.supplier_operator_address, proof.session_header.session_id)
                self.state.claims[key].proof_validation_status = poktroll_pb2.VALIDATED
        return cosmos_tx_service_pb2.BroadcastTxResponse(
            tx_response=cosmos_abci_pb2.TxResponse(txhash=txhash)
        )


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    address: str


async def start_grpc(state: NodeState) -> GrpcServer:
    node = FakeNode(state)
    server = grpc.aio.server()
    for add in (
        pocket_shared_pb2_grpc.add_QueryServicer_to_server,
        pocket_service_pb2_grpc.add_QueryServicer_to_server,
        pocket_session_pb2_grpc.add_QueryServicer_to_server,
        pocket_proof_pb2_grpc.add_QueryServicer_to_server,
        cosmos_auth_pb2_grpc.add_QueryServicer_to_server,
        cosmos_bank_pb2_grpc.add_QueryServicer_to_server,
        cosmos_tx_service_pb2_grpc.add_ServiceServicer_to_server,
    ):
        add(node, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return GrpcServer(server, f"127.0.0.1:{port}")


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- CometBFT ---------------------------------------------------------------------------


def block_hash_at(height: int) -> str:
    return hashlib.sha256(f"block-{height}".encode()).hexdigest().upper()


def block_time_at(height: int) -> str:
    return f"2026-08-20T10:{height // 60 % 60:02d}:{height % 60:02d}.123456789Z"


@dataclass
class CometState:
    network: str = "pocket"
    height: int = 10
    catching_up: bool = False
    block_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    ws_connections: int = 0
    new_header: asyncio.Condition = field(default_factory=asyncio.Condition)
    drop_ws: asyncio.Event = field(default_factory=asyncio.Event)
    skip_headers: set[int] = field(default_factory=set)  # heights never announced on the ws

    async def commit(self, n: int = 1) -> None:
        async with self.new_header:
            self.height += n
            self.new_header.notify_all()


def _rpc(result: Any) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": -1, "result": result})


def comet_app(state: CometState) -> web.Application:
    async def status(_: web.Request) -> web.Response:
        return _rpc(
            {
                "node_info": {"network": state.network},
                "sync_info": {
                    "latest_block_hash": block_hash_at(state.height),
                    "latest_block_height": str(state.height),
                    "latest_block_time": block_time_at(state.height),
                    "catching_up": state.catching_up,
                },
            }
        )

    async def block(request: web.Request) -> web.Response:
        height = int(request.query.get("height", state.height))
        if height > state.height:
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": -1,
                    "error": {"code": -32603, "message": "Internal error", "data": "too high"},
                }
            )
        return _rpc(
            {
                "block_id": {"hash": block_hash_at(height)},
                "block": {"header": {"height": str(height), "time": block_time_at(height)}},
            }
        )

    async def block_results(request: web.Request) -> web.Response:
        height = int(request.query["height"])
        body = state.block_results.get(height, {"txs_results": None, "finalize_block_events": []})
        return _rpc({"height": str(height), **body})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state.ws_connections += 1
        sub = json.loads((await ws.receive()).data)
        await ws.send_json({"jsonrpc": "2.0", "id": sub["id"], "result": {}})
        announced = state.height
        while not state.drop_ws.is_set():
            async with state.new_header:
                await state.new_header.wait_for(
                    lambda seen=announced: state.height > seen or state.drop_ws.is_set()
                )
            if state.drop_ws.is_set():
                break
            for h in range(announced + 1, state.height + 1):
                if h in state.skip_headers:
                    continue
                header = {"height": str(h), "time": block_time_at(h), "chain_id": state.network}
                await ws.send_json(
                    {
                        "jsonrpc": "2.0",
                        "id": sub["id"],
                        "result": {
                            "query": sub["params"]["query"],
                            "data": {
                                "type": "tendermint/event/NewBlockHeader",
                                "value": {"header": header},
                            },
                        },
                    }
                )
            announced = state.height
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get("/block", block)
    app.router.add_get("/block_results", block_results)
    app.router.add_get("/websocket", websocket)
    return app


async def start_comet(state: CometState) -> AsyncIterator[str]:
    runner = web.AppRunner(comet_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        state.drop_ws.set()
        async with state.new_header:
            state.new_header.notify_all()
        await runner.cleanup()
