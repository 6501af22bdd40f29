"""CometBFT RPC shapes, bad requests, and websocket block events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from relayminer.chain.sim.node.node import LocalNode


async def post(http: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post("/", data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def test_json_shapes(node: LocalNode, http: aiohttp.ClientSession) -> None:
    await node.produce_block()
    _, status = await post(http, {"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}})
    info = status["result"]
    assert info["node_info"]["network"] == "pocket"
    sync = info["sync_info"]
    assert sync["latest_block_height"] == "2" and sync["catching_up"] is False
    assert sync["latest_block_time"].endswith("Z") and sync["latest_block_hash"].isupper()

    async with http.get("/block", params={"height": "2"}) as r:
        block = (await r.json())["result"]
    header = block["block"]["header"]
    assert header["height"] == "2" and header["chain_id"] == "pocket"
    assert block["block_id"]["hash"] == sync["latest_block_hash"]
    assert block["block_id"]["parts"]["total"] == 1
    assert header["last_block_id"]["hash"] == sync["earliest_block_hash"]
    assert block["block"]["data"]["txs"] == []
    _, latest = await post(http, {"jsonrpc": "2.0", "id": 2, "method": "block", "params": [None]})
    assert latest["result"]["block"]["header"]["height"] == "2"
    _, results = await post(
        http, {"jsonrpc": "2.0", "id": 3, "method": "block_results", "params": {"height": "2"}}
    )
    assert results["result"]["txs_results"] is None and results["result"]["height"] == "2"
    assert results["result"]["finalize_block_events"] == []


async def test_bad_requests_leave_the_server_up(
    node: LocalNode, http: aiohttp.ClientSession
) -> None:
    status, parse = await post(http, b"{not json")
    assert parse["error"]["code"] == -32700 and status == 500
    _, invalid = await post(http, {"id": 1, "method": "status"})
    assert invalid["error"]["code"] == -32600
    _, unknown = await post(http, {"jsonrpc": "2.0", "id": 1, "method": "nope"})
    assert unknown["error"]["code"] == -32601
    _, bare = await post(
        http, {"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": 1}}
    )
    assert bare["error"]["code"] == -32602  # int64 params are strings
    _, ahead = await post(
        http, {"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": "9"}}
    )
    assert (
        ahead["error"]["code"] == -32603 and "current blockchain height 1" in ahead["error"]["data"]
    )
    _, missing = await post(
        http, {"jsonrpc": "2.0", "id": 1, "method": "tx", "params": {"hash": "q80="}}
    )
    assert missing["error"] == {
        "code": -32603,
        "message": "Internal error",
        "data": "tx (ABCD) not found",
    }
    _, garbage_tx = await post(
        http,
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "broadcast_tx_sync",
            "params": {"tx": "/wBnYXJiYWdl"},
        },
    )
    assert garbage_tx["result"]["code"] == 2 and garbage_tx["result"]["codespace"] == "sdk"
    _, bad_b64 = await post(
        http, {"jsonrpc": "2.0", "id": 5, "method": "broadcast_tx_sync", "params": {"tx": "%%"}}
    )
    assert bad_b64["error"]["code"] == -32602
    _, batch = await post(
        http, [{"jsonrpc": "2.0", "id": 1, "method": "health"}, {"jsonrpc": "2.0", "id": 2}]
    )
    assert batch[0]["result"] == {} and batch[1]["error"]["code"] == -32601
    async with http.get("/tx", params={"hash": "0xZZ"}) as r:
        assert (await r.json())["error"]["code"] == -32602
    _, after = await post(http, {"jsonrpc": "2.0", "id": 9, "method": "status"})
    assert after["id"] == 9 and after["result"]["sync_info"]["latest_block_height"] == "1"


async def test_websocket_block_events(node: LocalNode, http: aiohttp.ClientSession) -> None:
    assert node.endpoints is not None
    async with http.ws_connect("/websocket") as ws:
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "method": "subscribe",
                "id": 1,
                "params": {"query": "tm.event='NewBlockHeader'"},
            }
        )
        assert await ws.receive_json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        await ws.send_json(
            {"jsonrpc": "2.0", "method": "subscribe", "id": 2, "params": ["tm.event = 'NewBlock'"]}
        )
        assert (await ws.receive_json())["id"] == 2
        await ws.send_json(
            {"jsonrpc": "2.0", "method": "subscribe", "id": 3, "params": {"query": "tm.event='Tx'"}}
        )
        assert (await ws.receive_json())["error"]["code"] == -32603
        await ws.send_str("not json")
        assert (await ws.receive_json())["error"]["code"] == -32700
        await ws.send_json({"jsonrpc": "2.0", "method": "status", "id": 4})
        assert (await ws.receive_json())["result"]["node_info"]["network"] == "pocket"

        for height in ("2", "3"):
            await node.produce_block()
            got = [await asyncio.wait_for(ws.receive_json(), 10) for _ in range(2)]
            by_id = {m["id"]: m["result"] for m in got}
            header_event = by_id[1]
            assert header_event["query"] == "tm.event='NewBlockHeader'"
            assert header_event["data"]["type"] == "tendermint/event/NewBlockHeader"
            assert header_event["data"]["value"]["header"]["height"] == height
            assert header_event["events"] == {"tm.event": ["NewBlockHeader"]}
            block_event = by_id[2]
            assert block_event["data"]["type"] == "tendermint/event/NewBlock"
            assert block_event["data"]["value"]["block"]["header"]["height"] == height
            assert "result_finalize_block" in block_event["data"]["value"]

        await ws.send_json({"jsonrpc": "2.0", "method": "unsubscribe_all", "id": 5, "params": {}})
        assert (await ws.receive_json())["id"] == 5
