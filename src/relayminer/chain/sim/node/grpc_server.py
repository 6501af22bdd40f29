"""The localnet's gRPC server (grpc.aio): the module queries and ``cosmos.tx.v1beta1.Service``.

Services are registered with the generated ``add_*Servicer_to_server`` functions of
``relayminer.proto.*_pb2_grpc`` (so method paths and (de)serialisers are the protos'); each
servicer attribute is an async handler. Every response carries the served height in the
``x-cosmos-block-height`` header, as the SDK's gRPC server does; a request header asking for a
height above the latest block is refused (InvalidArgument) and any other height is served from
the latest state (the simulated chain keeps no history).

Tx service behaviour (cosmos-sdk ``x/auth/tx/service.go``, ``client/broadcast.go``):
BroadcastTx SYNC/ASYNC runs CheckTx and answers a ``TxResponse`` (height 0) even for a rejected
tx; CometBFT's "tx already exists in cache" becomes code 19. BLOCK mode is refused. Simulate
failures are gRPC Unknown with the SDK's text. GetTx answers NotFound for a tx not in a block.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message

from relayminer.chain.sim.node.app import LocalApp, MempoolError, SimulationError
from relayminer.chain.sim.node.queries import METHODS, Queries, QueryError
from relayminer.chain.sim.node.store import TxResultDoc
from relayminer.chain.sim.node.txcodec import decode_tx
from relayminer.proto import (
    cosmos_abci_pb2,
    cosmos_auth_pb2_grpc,
    cosmos_bank_pb2_grpc,
    cosmos_tx_pb2,
    cosmos_tx_service_pb2,
    cosmos_tx_service_pb2_grpc,
    pocket_application_pb2_grpc,
    pocket_proof_pb2_grpc,
    pocket_service_pb2_grpc,
    pocket_session_pb2_grpc,
    pocket_shared_pb2_grpc,
    pocket_supplier_pb2_grpc,
)

__all__ = ["HEIGHT_HEADER", "GrpcServer", "tx_response"]

log = logging.getLogger(__name__)

HEIGHT_HEADER = "x-cosmos-block-height"
Handler = Callable[[Any, Any], Awaitable[Message]]

_REGISTRARS: dict[str, Callable[[Any, Any], None]] = {
    "pocket.shared.Query": pocket_shared_pb2_grpc.add_QueryServicer_to_server,
    "pocket.session.Query": pocket_session_pb2_grpc.add_QueryServicer_to_server,
    "pocket.proof.Query": pocket_proof_pb2_grpc.add_QueryServicer_to_server,
    "pocket.service.Query": pocket_service_pb2_grpc.add_QueryServicer_to_server,
    "pocket.supplier.Query": pocket_supplier_pb2_grpc.add_QueryServicer_to_server,
    "pocket.application.Query": pocket_application_pb2_grpc.add_QueryServicer_to_server,
    "cosmos.auth.v1beta1.Query": cosmos_auth_pb2_grpc.add_QueryServicer_to_server,
    "cosmos.bank.v1beta1.Query": cosmos_bank_pb2_grpc.add_QueryServicer_to_server,
}

_TX_REGISTRAR: Callable[[Any, Any], None] = cosmos_tx_service_pb2_grpc.add_ServiceServicer_to_server


class _Servicer:
    """Attributes named after the service's methods (what ``add_*Servicer_to_server`` reads)."""


def block_timestamp(time_ns: int) -> str:
    """TxResponse ``timestamp``: RFC 3339 in UTC (seconds, as the SDK formats it)."""
    return datetime.fromtimestamp(time_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tx_response(doc: TxResultDoc, time_ns: int) -> cosmos_abci_pb2.TxResponse:
    """The SDK's TxResponse of an executed tx."""
    response = cosmos_abci_pb2.TxResponse(
        height=doc.height,
        txhash=doc.hash,
        codespace=doc.codespace,
        code=doc.code,
        data=doc.data.hex().upper(),
        raw_log=doc.log,
        gas_wanted=doc.gas_wanted,
        gas_used=doc.gas_used,
        timestamp=block_timestamp(time_ns),
        events=[e.to_proto() for e in doc.events],
    )
    response.tx.Pack(_tx_message(doc.raw), type_url_prefix="/")
    return response


def _tx_message(raw: bytes) -> cosmos_tx_pb2.Tx:
    decoded = decode_tx(raw)
    return cosmos_tx_pb2.Tx(
        body=decoded.body, auth_info=decoded.auth_info, signatures=list(decoded.tx_raw.signatures)
    )


class GrpcServer:
    def __init__(self, app: LocalApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.queries = Queries(app)
        self._host = host
        self._requested_port = port
        self.port = 0
        self._server: Any = None

    async def start(self) -> int:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 10 * 1024 * 1024)])
        for service, registrar in _REGISTRARS.items():
            servicer = _Servicer()
            for path, _method in METHODS.items():
                if path.startswith(f"/{service}/"):
                    name = path.rsplit("/", 1)[1]
                    setattr(servicer, name, self._query_handler(path))
            registrar(servicer, server)
        tx_servicer = _Servicer()
        tx_servicer.BroadcastTx = self._broadcast  # type: ignore[attr-defined]
        tx_servicer.Simulate = self._simulate  # type: ignore[attr-defined]
        tx_servicer.GetTx = self._get_tx  # type: ignore[attr-defined]
        tx_servicer.GetTxsEvent = self._get_txs_event  # type: ignore[attr-defined]
        _TX_REGISTRAR(tx_servicer, server)
        self.port = int(server.add_insecure_port(f"{self._host}:{self._requested_port}"))
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _height(self, context: Any) -> int:
        """The served height: checks the request's height header, sends the response's."""
        latest = (await self.app.chain.latest_block()).height
        requested = dict(context.invocation_metadata() or ()).get(HEIGHT_HEADER)
        if requested is not None:
            try:
                height = int(requested)
            except ValueError:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"invalid height header {requested!r}"
                )
            if height < 0 or height > latest:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "cannot query with height in the future; please provide a valid height",
                )
            if height:
                latest = height
        await context.send_initial_metadata(((HEIGHT_HEADER, str(latest)),))
        return latest

    def _query_handler(self, path: str) -> Handler:
        async def handle(request: Any, context: Any) -> Message:
            await self._height(context)
            try:
                return await self.queries.call(path, request)
            except QueryError as err:
                await context.abort(err.code, err.message)
                raise  # pragma: no cover - abort raises

        return handle

    async def _broadcast(self, request: Any, context: Any) -> Message:
        await self._height(context)
        mode = request.mode
        if not request.tx_bytes:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid empty tx")
        if mode == cosmos_tx_service_pb2.BROADCAST_MODE_BLOCK:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "unsupported return type block; supported types: sync, async",
            )
        if mode not in (
            cosmos_tx_service_pb2.BROADCAST_MODE_SYNC,
            cosmos_tx_service_pb2.BROADCAST_MODE_ASYNC,
        ):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid broadcast mode")
        try:
            result = await self.app.check_tx(request.tx_bytes)
        except MempoolError:
            return cosmos_tx_service_pb2.BroadcastTxResponse(
                tx_response=cosmos_abci_pb2.TxResponse(
                    txhash=self.app.store.hash_of(request.tx_bytes), codespace="sdk", code=19
                )
            )
        if mode == cosmos_tx_service_pb2.BROADCAST_MODE_ASYNC:
            response = cosmos_abci_pb2.TxResponse(txhash=result.tx_hash)
        else:
            response = cosmos_abci_pb2.TxResponse(
                txhash=result.tx_hash,
                codespace=result.codespace,
                code=result.code,
                raw_log=result.log,
                gas_wanted=result.gas_wanted,
                gas_used=result.gas_used,
            )
        return cosmos_tx_service_pb2.BroadcastTxResponse(tx_response=response)

    async def _simulate(self, request: Any, context: Any) -> Message:
        await self._height(context)
        raw = request.tx_bytes
        if not raw and request.HasField("tx"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the deprecated tx field is not supported"
            )
        if not raw:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty txBytes is not allowed")
        try:
            result = await self.app.simulate(raw)
        except SimulationError as err:
            await context.abort(grpc.StatusCode.UNKNOWN, str(err))
            raise  # pragma: no cover - abort raises
        return cosmos_tx_service_pb2.SimulateResponse(
            gas_info=cosmos_abci_pb2.GasInfo(
                gas_wanted=result.gas_wanted, gas_used=result.gas_used
            ),
            result=cosmos_abci_pb2.Result(
                events=[e.to_proto() for e in result.events], msg_responses=result.msg_responses
            ),
        )

    async def _get_tx(self, request: Any, context: Any) -> Message:
        await self._height(context)
        text = request.hash
        if not text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request cannot be nil")
        try:
            bytes.fromhex(text)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid tx hash {text!r}")
        doc = await self.app.store.tx(text)
        if doc is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"tx not found: {text}")
            raise  # pragma: no cover - abort raises
        block = await self.app.store.block(doc.height)
        return cosmos_tx_service_pb2.GetTxResponse(
            tx=_tx_message(doc.raw), tx_response=tx_response(doc, block.time_ns)
        )

    async def _get_txs_event(self, request: Any, context: Any) -> Message:
        """Only ``message.action='<type url>'`` conditions (joined by AND) are understood: what
        the Go miner asks for its fee estimate."""
        await self._height(context)
        conditions = [request.query] if request.query else list(request.events)
        actions: list[str] = []
        for condition in " AND ".join(conditions).split(" AND "):
            key, _, value = condition.strip().partition("=")
            if key.strip() != "message.action" or not value.strip():
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unsupported query condition {condition.strip()!r} "
                    "(the localnet filters on message.action only)",
                )
            actions.append(value.strip().strip("'\""))
        docs = [
            d
            for d in await self.app.store.all_txs()
            if all(
                any(e.type == "message" and ("action", action) in e.attributes for e in d.events)
                for action in actions
            )
        ]
        if request.order_by == cosmos_tx_service_pb2.ORDER_BY_DESC:
            docs.reverse()
        limit = request.limit or 100
        page = max(1, request.page or 1)
        chunk = docs[(page - 1) * limit : page * limit]
        responses = []
        for d in chunk:
            block = await self.app.store.block(d.height)
            responses.append(tx_response(d, block.time_ns))
        return cosmos_tx_service_pb2.GetTxsEventResponse(
            txs=[_tx_message(d.raw) for d in chunk], tx_responses=responses, total=len(docs)
        )
