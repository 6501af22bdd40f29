"""CometClient against an in-process aiohttp CometBFT double (HTTP + websocket)."""

from __future__ import annotations

import pytest

from relayminer.chain.base import ChainUnavailableError
from relayminer.chain.pocket.cometbft import CometClient, decode_events, parse_time

from .fakes import CometState, block_hash_at, free_port


def test_parse_time_keeps_sub_second_digits() -> None:
    assert parse_time("1970-01-01T00:00:01.5Z") == 1.5
    assert parse_time("1970-01-01T00:00:02Z") == 2.0
    assert abs(parse_time("2026-08-20T10:00:30.123456789Z") % 1 - 0.123456789) < 1e-6


def test_events_are_unquoted_and_sdk_extras_dropped() -> None:
    events = decode_events(
        7,
        [
            {
                "type": "pocket.tokenomics.EventClaimExpired",
                "attributes": [
                    {"key": "supplier_operator_address", "value": '"pokt1s"'},
                    {"key": "session_end_block_height", "value": '"20"'},
                    {"key": "claim_proof_status_int", "value": "1"},
                    {"key": "expiration_reason", "value": '"PROOF_MISSING"'},
                    {"key": "reward_distribution", "value": '{"pokt1s":"10upokt"}'},
                    {"key": "mode", "value": "EndBlock"},
                    {"key": "msg_index", "value": "0"},
                ],
            }
        ],
    )
    (event,) = events
    assert event.type == "EventClaimExpired" and event.height == 7
    assert event.attributes == {
        "supplier_operator_address": "pokt1s",
        "session_end_block_height": "20",
        "claim_proof_status_int": "1",
        "expiration_reason": "PROOF_MISSING",
        "reward_distribution": '{"pokt1s":"10upokt"}',
    }


async def test_status_block_and_results(comet_url: str, comet_state: CometState) -> None:
    comet_state.block_results[9] = {
        "txs_results": [
            {"events": [{"type": "message", "attributes": [{"key": "action", "value": "x"}]}]}
        ],
        "finalize_block_events": [
            {"type": "pocket.tokenomics.EventClaimSettled", "attributes": []}
        ],
    }
    client = CometClient(comet_url)
    try:
        status = await client.status()
        assert (status.network, status.latest_height, status.catching_up) == ("pocket", 10, False)
        block = await client.block(9)
        assert block.height == 9 and block.hash.hex().upper() == block_hash_at(9)
        assert [e.type for e in await client.block_results(9)] == ["message", "EventClaimSettled"]
        assert await client.block_results(8) == []
        with pytest.raises(ChainUnavailableError, match="too high"):
            await client.block(99)
    finally:
        await client.close()


async def test_unreachable_node_is_chain_unavailable() -> None:
    client = CometClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        with pytest.raises(ChainUnavailableError):
            await client.status()
    finally:
        await client.close()


async def test_blocks_in_order_across_reconnect_with_gap_fill(
    comet_url: str, comet_state: CometState
) -> None:
    client = CometClient(comet_url, backoff_initial=0.01, backoff_max=0.05)
    blocks = client.blocks(after_height=8)
    try:
        assert [(await anext(blocks)).height for _ in range(2)] == [9, 10]  # caught up by HTTP
        comet_state.skip_headers.add(12)  # a header the websocket never announces
        await comet_state.commit(3)
        assert [(await anext(blocks)).height for _ in range(3)] == [11, 12, 13]
        # drop the websocket and commit while disconnected: reconnect, then fill 14-15
        comet_state.drop_ws.set()
        async with comet_state.new_header:
            comet_state.new_header.notify_all()
        comet_state.height += 2
        first = await anext(blocks)
        comet_state.drop_ws.clear()
        second = await anext(blocks)
        assert (first.height, second.height) == (14, 15)
        assert client.reconnects >= 1
        await comet_state.commit(1)
        assert (await anext(blocks)).height == 16
        assert comet_state.ws_connections >= 2
    finally:
        await blocks.aclose()
        await client.close()
