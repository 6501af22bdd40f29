from __future__ import annotations

import aiohttp

from relayminer.chain.sim.node.node import LocalNode


async def test_status(node: LocalNode, http: aiohttp.ClientSession) -> None:
    await node.produce_block()
    async with http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "status"}) as r:
        doc = await r.json()
    assert doc["result"]["sync_info"]["latest_block_height"] == "2"
