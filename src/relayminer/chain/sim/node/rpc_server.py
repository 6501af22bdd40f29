"""The localnet's CometBFT RPC (aiohttp): JSON-RPC 2.0 over HTTP POST ``/``, the same methods
as GET URIs (``/block?height=5``), and the ``/websocket`` event subscriptions.

Methods: ``status``, ``health``, ``block``, ``block_results``, ``tx``, ``broadcast_tx_sync``,
``abci_query``. Parameters come by name or by position. In POST bodies int64 parameters must be
strings (``"height":"5"``; a bare number is refused, -32602 as cmtjson does), ``tx``/``hash``
are base64 and ``abci_query.data`` hex; in GET URIs numbers are plain, bytes ``0x``-hex and
strings quoted. Errors are JSON-RPC error objects: -32700 parse error, -32600 invalid request,
-32601 unknown method, -32602 bad params, -32603 for a method's failure (the reason in
``data``). No request can stop the server: every failure is answered and logged.

Websocket: ``subscribe`` to ``tm.event='NewBlockHeader'`` or ``tm.event='NewBlock'`` (at most
five subscriptions per connection), acknowledged with an empty result; each event is a
response with the subscription's request id. ``unsubscribe``/``unsubscribe_all``; any other
method is answered as over HTTP. The server pings every 27 s.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from aiohttp import WSMsgType, web

from relayminer.chain.sim.errors import UnknownBlockError
from relayminer.chain.sim.node import comet
from relayminer.chain.sim.node.app import LocalApp, MempoolError
from relayminer.chain.sim.node.queries import METHODS, Queries, QueryError

__all__ = ["RpcError", "RpcServer"]

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS: Final = 5
_QUERY = re.compile(r"^\s*tm\.event\s*=\s*'(\w+)'\s*$")
_SUPPORTED_EVENTS: Final = ("NewBlockHeader", "NewBlock")
#: abci_query error mapping of gRPC statuses (baseapp ``gRPCErrorToSDKError``)
_QUERY_CODES: Final = {
    grpc.StatusCode.NOT_FOUND: 22,
    grpc.StatusCode.INVALID_ARGUMENT: 18,
    grpc.StatusCode.FAILED_PRECONDITION: 18,
    grpc.StatusCode.UNAUTHENTICATED: 4,
}
_GO_CODE_NAMES: Final = {
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
}
_POSITIONAL: Final = {
    "block": ("height",),
    "block_results": ("height",),
    "tx": ("hash", "prove"),
    "broadcast_tx_sync": ("tx",),
    "abci_query": ("path", "data", "height", "prove"),
}


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(data or message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}


def _params_error(data: str) -> RpcError:
    return RpcError(-32602, "Invalid params", data)


def _internal(data: str) -> RpcError:
    return RpcError(-32603, "Internal error", data)


# --- parameter decoding ------------------------------------------------------------------------


def _int64(name: str, value: Any, from_uri: bool) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if from_uri and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _params_error(
        f"error converting json params to arguments: {name}: invalid int64 {value!r} "
        "(int64 parameters are JSON strings)"
    )


def _bytes(name: str, value: Any, encoding: str) -> bytes:
    if not isinstance(value, str):
        raise _params_error(f"{name}: expected a string, got {type(value).__name__}")
    try:
        if encoding == "hex":
            return bytes.fromhex(value[2:] if value.startswith("0x") else value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as err:
        raise _params_error(f"{name}: invalid {encoding}: {err}") from None


def _uri_value(raw: str) -> Any:
    """A GET URI argument: quoted string, ``0x`` hex (kept as text), or a plain number."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    return raw


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    subscriptions: dict[str, Any] = field(default_factory=dict)  # query -> request id


class RpcServer:
    def __init__(self, app: LocalApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.queries = Queries(app)
        self._host = host
        self._requested_port = port
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._clients: set[_Client] = set()
        self._methods: dict[str, Callable[[dict[str, Any], bool], Awaitable[Any]]] = {
            "status": self.status,
            "health": self.health,
            "block": self.block,
            "block_results": self.block_results,
            "tx": self.tx,
            "broadcast_tx_sync": self.broadcast_tx_sync,
            "abci_query": self.abci_query,
        }

    # --- server lifecycle ------------------------------------------------------------------

    async def start(self) -> int:
        web_app = web.Application(client_max_size=4 * 1024 * 1024)
        web_app.router.add_post("/", self._handle_post)
        web_app.router.add_get("/websocket", self._handle_websocket)
        web_app.router.add_get("/{method}", self._handle_get)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._requested_port
        self._runner = runner
        return self.port

    async def stop(self) -> None:
        for client in list(self._clients):
            await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- transports ------------------------------------------------------------------------

    async def _call(self, request: Any, from_uri: bool = False) -> dict[str, Any]:
        """One JSON-RPC request object → one response object (never raises)."""
        rid = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
                raise RpcError(-32600, "Invalid Request", "expected a JSON-RPC 2.0 object")
            method = request.get("method")
            handler = self._methods.get(method) if isinstance(method, str) else None
            if handler is None:
                raise RpcError(-32601, "Method not found", f"unknown method {method!r}")
            params = request.get("params") or {}
            if isinstance(params, list):
                names = _POSITIONAL.get(str(method), ())
                if len(params) > len(names):
                    raise _params_error(f"too many positional params for {method}")
                params = dict(zip(names, params, strict=False))
            if not isinstance(params, dict):
                raise _params_error("params must be an object or an array")
            result = await handler(params, from_uri)
        except RpcError as err:
            return {"jsonrpc": "2.0", "id": rid, "error": err.to_json()}
        except Exception as err:  # a bug must not take the node down: answer and log it
            log.exception("localnet rpc: %s failed", request.get("method"))
            return {"jsonrpc": "2.0", "id": rid, "error": _internal(str(err)).to_json()}
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    async def _handle_post(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as err:
            error = RpcError(-32700, "Parse error", f"error unmarshaling request: {err}")
            return web.json_response(
                {"jsonrpc": "2.0", "id": None, "error": error.to_json()}, status=500
            )
        if isinstance(body, list):
            if not body:
                error = RpcError(-32600, "Invalid Request", "empty batch")
                return web.json_response(
                    {"jsonrpc": "2.0", "id": None, "error": error.to_json()}, status=500
                )
            return web.json_response([await self._call(r) for r in body])
        return web.json_response(await self._call(body))

    async def _handle_get(self, request: web.Request) -> web.Response:
        params = {k: _uri_value(v) for k, v in request.query.items()}
        call = {
            "jsonrpc": "2.0",
            "id": -1,
            "method": request.match_info["method"],
            "params": params,
        }
        response = await self._call(call, from_uri=True)
        return web.json_response(response, status=200 if "result" in response else 500)

    async def _handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=27.0)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients.add(client)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    doc = json.loads(message.data)
                except ValueError as err:
                    error = RpcError(-32700, "Parse error", str(err))
                    await ws.send_json({"jsonrpc": "2.0", "id": None, "error": error.to_json()})
                    continue
                await ws.send_json(await self._ws_call(client, doc))
        finally:
            self._clients.discard(client)
        return ws

    async def _ws_call(self, client: _Client, doc: Any) -> dict[str, Any]:
        method = doc.get("method") if isinstance(doc, dict) else None
        if method not in ("subscribe", "unsubscribe", "unsubscribe_all"):
            return await self._call(doc)
        rid = doc.get("id")
        params = doc.get("params") or {}
        query = params.get("query", "") if isinstance(params, dict) else (params or [""])[0]
        try:
            if method == "unsubscribe_all":
                client.subscriptions.clear()
            elif method == "unsubscribe":
                if client.subscriptions.pop(query, None) is None:
                    raise _internal("subscription not found")
            else:
                match = _QUERY.match(query) if isinstance(query, str) else None
                if match is None or match.group(1) not in _SUPPORTED_EVENTS:
                    raise _internal(
                        f"failed to parse query {query!r}: the localnet serves "
                        "tm.event='NewBlockHeader' and tm.event='NewBlock'"
                    )
                if query in client.subscriptions:
                    raise _internal("already subscribed")
                if len(client.subscriptions) >= MAX_SUBSCRIPTIONS:
                    raise _internal(f"max_subscriptions_per_client {MAX_SUBSCRIPTIONS} reached")
                client.subscriptions[query] = rid
        except RpcError as err:
            return {"jsonrpc": "2.0", "id": rid, "error": err.to_json()}
        return {"jsonrpc": "2.0", "id": rid, "result": {}}

    async def publish_block(self, height: int) -> None:
        """Send block ``height``'s events to every subscribed websocket client."""
        wanted = {_QUERY.match(q).group(1) for c in self._clients for q in c.subscriptions}  # type: ignore[union-attr]
        if not wanted:
            return
        block = await self._block_json(height)
        events: dict[str, dict[str, Any]] = {
            "NewBlockHeader": {
                "data": {
                    "type": "tendermint/event/NewBlockHeader",
                    "value": {"header": block["block"]["header"]},
                },
                "events": {"tm.event": ["NewBlockHeader"]},
            }
        }
        if "NewBlock" in wanted:
            results = await self._block_results_json(height)
            flat = comet.flatten_events([*(await self.app.store.block(height)).events])
            events["NewBlock"] = {
                "data": {
                    "type": "tendermint/event/NewBlock",
                    "value": {
                        "block": block["block"],
                        "block_id": block["block_id"],
                        "result_finalize_block": {
                            "events": results["finalize_block_events"],
                            "tx_results": results["txs_results"],
                            "validator_updates": None,
                            "consensus_param_updates": None,
                            "app_hash": results["app_hash"],
                        },
                    },
                },
                "events": {"tm.event": ["NewBlock"], **flat},
            }
        for client in list(self._clients):
            for query, rid in list(client.subscriptions.items()):
                match = _QUERY.match(query)
                kind = match.group(1) if match else ""
                payload = events.get(kind)
                if payload is None:
                    continue
                message = {"jsonrpc": "2.0", "id": rid, "result": {"query": query, **payload}}
                try:
                    await client.ws.send_json(message)
                except (ConnectionError, RuntimeError):
                    self._clients.discard(client)

    # --- methods ---------------------------------------------------------------------------

    async def _height_param(self, params: dict[str, Any], from_uri: bool) -> int:
        latest = (await self.app.chain.latest_block()).height
        height = _int64("height", params.get("height"), from_uri)
        if height is None or height == 0:
            return latest
        if height < 0:
            raise _internal(f"height must be greater than 0, but got {height}")
        if height > latest:
            raise _internal(
                f"height {height} must be less than or equal to the current blockchain "
                f"height {latest}"
            )
        return height

    async def status(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        chain = self.app.chain
        latest = await chain.latest_block()
        genesis = await chain.block(1)
        latest_ns = _time_ns(latest.time_unix)
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": comet.VALIDATOR_ADDRESS.lower(),
                "listen_addr": f"tcp://{self._host}:{self.port}",
                "network": self.app.config.chain_id,
                "version": "0.38.19",
                "channels": "40202122233038606100",
                "moniker": "relayminer-localnet",
                "other": {"tx_index": "on", "rpc_address": f"tcp://{self._host}:{self.port}"},
            },
            "sync_info": {
                "latest_block_hash": comet.hexu(latest.hash),
                "latest_app_hash": comet.hexu(comet.app_hash(latest.hash)),
                "latest_block_height": str(latest.height),
                "latest_block_time": comet.rfc3339nano(latest_ns),
                "earliest_block_hash": comet.hexu(genesis.hash),
                "earliest_app_hash": comet.hexu(comet.app_hash(genesis.hash)),
                "earliest_block_height": str(genesis.height),
                "earliest_block_time": comet.rfc3339nano(_time_ns(genesis.time_unix)),
                "catching_up": False,
            },
            "validator_info": {
                "address": comet.VALIDATOR_ADDRESS,
                "pub_key": {
                    "type": "tendermint/PubKeyEd25519",
                    "value": comet.b64(comet._VALIDATOR_KEY),
                },
                "voting_power": "10",
            },
        }

    async def health(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        return {}

    async def _block_json(self, height: int) -> dict[str, Any]:
        chain = self.app.chain
        try:
            block = await chain.block(height)
        except UnknownBlockError as err:
            raise _internal(str(err)) from None
        prev = await chain.block(height - 1) if height > 1 else None
        txs = [d.raw for d in await self.app.store.block_txs(height)]
        return comet.block_json(
            chain_id=self.app.config.chain_id,
            height=height,
            time_ns=_time_ns(block.time_unix),
            block_hash=block.hash,
            prev_hash=prev.hash if prev else None,
            prev_time_ns=_time_ns(prev.time_unix) if prev else 0,
            txs=txs,
        )

    async def block(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        return await self._block_json(await self._height_param(params, from_uri))

    async def _block_results_json(self, height: int) -> dict[str, Any]:
        block = await self.app.chain.block(height)
        record = await self.app.store.block(height)
        txs = await self.app.store.block_txs(height)
        return comet.block_results_json(height, txs, record.events, block.hash)

    async def block_results(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        return await self._block_results_json(await self._height_param(params, from_uri))

    async def tx(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        raw_hash = _bytes("hash", params.get("hash"), "hex" if from_uri else "base64")
        doc = await self.app.store.tx(raw_hash.hex())
        if doc is None:
            raise _internal(f"tx ({raw_hash.hex().upper()}) not found")
        return {
            "hash": doc.hash,
            "height": str(doc.height),
            "index": doc.index,
            "tx_result": comet.exec_tx_result(doc),
            "tx": comet.b64(doc.raw),
        }

    async def broadcast_tx_sync(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        raw = _bytes("tx", params.get("tx"), "hex" if from_uri else "base64")
        try:
            result = await self.app.check_tx(raw)
        except MempoolError as err:
            raise _internal(str(err)) from None
        return {
            "code": result.code,
            "data": "",
            "log": result.log,
            "codespace": result.codespace,
            "hash": result.tx_hash,
        }

    async def abci_query(self, params: dict[str, Any], from_uri: bool) -> dict[str, Any]:
        path = params.get("path")
        if not isinstance(path, str):
            raise _params_error("path: expected a string")
        data = _bytes("data", params.get("data") or "", "hex")
        height = await self._height_param(params, from_uri)
        method = METHODS.get(path)
        response: dict[str, Any] = {}
        if method is None:
            response = {
                "code": 6,
                "codespace": "sdk",
                "log": f"no custom querier found for route {path}: unknown request",
            }
        else:
            try:
                request = method.request.FromString(data)
                answer = await self.queries.call(path, request)
                response["value"] = comet.b64(answer.SerializeToString())
            except QueryError as err:
                name = _GO_CODE_NAMES.get(err.code, err.code.name.title())
                response = {
                    "code": _QUERY_CODES.get(err.code, 6),
                    "codespace": "sdk",
                    "log": f"rpc error: code = {name} desc = {err.message}",
                }
            except Exception as err:  # undecodable request data
                response = {"code": 2, "codespace": "sdk", "log": f"{err}: tx parse error"}
        response["height"] = str(height)
        return {"response": response}


def _time_ns(time_unix: float) -> int:
    return round(time_unix * 1000) * 1_000_000
