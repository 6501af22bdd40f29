"""The Pocket chain client's conformance over the wire: :class:`PocketChain` against an
in-process :class:`LocalNode` on loopback (both Redis backends).

Every query of the ``Chain`` protocol (and the client's own account, balance, supplier and
application queries), one broadcast per rejection class, and the block follower across a node
restart, with the heights produced while it was down filled in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from relayminer.chain.base import ChainEvent, SessionHeader
from relayminer.chain.base import UnknownServiceError as ChainUnknownServiceError
from relayminer.chain.pocket import (
    PocketChain,
    PocketChainSettings,
    PocketKey,
    UnknownServiceError,
    build_pocket_chain,
)
from relayminer.chain.pocket.settings import KeySources
from relayminer.chain.rejections import Rejection
from relayminer.chain.sim.errors import UnknownServiceError as SimUnknownServiceError
from relayminer.chain.sim.node.node import LocalNode
from tests.conftest import RedisBackend
from tests.localnet.support import (
    APP,
    CUPR,
    STRANGER,
    SUPPLIER,
    SUPPLIER2,
    Key,
    claim_msg,
    make_config,
    sign_tx,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def pocket_key(key: Key) -> PocketKey:
    return PocketKey.from_hex(bytes(key.private.secret).hex())


KEYS: Mapping[str, PocketKey] = {
    k.address(): k for k in (pocket_key(SUPPLIER), pocket_key(SUPPLIER2), pocket_key(STRANGER))
}


def settings_for(node: LocalNode, **overrides: Any) -> PocketChainSettings:
    assert node.endpoints is not None
    fields: dict[str, Any] = {
        "chain_id": node.endpoints.chain_id,
        "grpc_endpoints": (node.endpoints.grpc,),
        "rpc_url": node.endpoints.rpc,
        "gas_price_upokt": Decimal("0.01"),  # the node's minimum
        "reconnect_backoff_max_seconds": 0.2,
        "keys": KeySources(keys_file="unused.yaml"),  # keys are passed to the builder
        **overrides,
    }
    return PocketChainSettings(**fields)


@pytest.fixture
async def client(node: LocalNode) -> AsyncIterator[PocketChain]:
    chain = build_pocket_chain(settings_for(node), keys=lambda: KEYS)
    await chain.start()
    try:
        yield chain
    finally:
        await chain.close()


async def advance_to(node: LocalNode, height: int) -> None:
    while (await node.app.chain.latest_block()).height < height:
        await node.produce_block()


async def header_of_session_1(client: PocketChain) -> SessionHeader:
    return (await client.get_session(APP.address, "anvil", 1)).header


def test_unknown_service_errors_share_one_base() -> None:
    assert issubclass(UnknownServiceError, ChainUnknownServiceError)
    assert issubclass(SimUnknownServiceError, ChainUnknownServiceError)
    assert issubclass(ChainUnknownServiceError, LookupError)


async def test_every_query_over_the_wire(node: LocalNode, client: PocketChain) -> None:
    await advance_to(node, 3)
    latest = await client.latest_block()
    on_node = await node.app.chain.latest_block()
    assert (latest.height, latest.hash) == (3, on_node.hash)
    assert await client.block_hash(2) == await node.app.chain.block_hash(2)

    params = await client.shared_params()
    assert (params.num_blocks_per_session, params.claim_window_close_offset_blocks) == (4, 2)
    assert await client.shared_params(2) == params
    assert (await client.proof_params()).proof_request_probability == 0.0

    service = await client.service("anvil", 1)
    assert (service.service_id, service.compute_units_per_relay) == ("anvil", CUPR)
    assert service.relay_difficulty_target == b"\xff" * 32
    with pytest.raises(ChainUnknownServiceError, match="nope"):
        await client.service("nope", 1)

    session = await client.get_session(APP.address, "anvil", 2)
    header = session.header
    assert (header.session_start_block_height, header.session_end_block_height) == (1, 4)
    assert header.application_address == APP.address and header.session_id
    assert {SUPPLIER.address, SUPPLIER2.address} <= set(session.suppliers)

    assert await client.get_claim(SUPPLIER.address, header.session_id) is None
    assert await client.claims(SUPPLIER.address) == []

    queries = client.queries
    account = await queries.account(SUPPLIER.address)
    assert account is not None and account.address == SUPPLIER.address
    assert await queries.account(STRANGER.address) is None
    assert await queries.balance(SUPPLIER.address) == 1_000_000
    assert await queries.balance(STRANGER.address) == 0
    supplier = await queries.supplier(SUPPLIER.address)
    assert supplier is not None and supplier.supplier.operator_address == SUPPLIER.address
    assert await queries.supplier(STRANGER.address) is None
    application = await queries.application(APP.address)
    assert application is not None and application.application.address == APP.address


async def test_a_claim_lands_and_its_events_carry_the_session(
    node: LocalNode, client: PocketChain
) -> None:
    await advance_to(node, 7)  # session 1 = blocks 1..4; its claim window closes at 8
    header = await header_of_session_1(client)
    result = await client.broadcast([claim_msg(SUPPLIER.address, header)])
    assert result.ok, result
    assert len(result.tx_hash) == 64
    block = await node.produce_block()
    claim = await client.get_claim(SUPPLIER.address, header.session_id)
    assert claim is not None and claim.session_header.session_id == header.session_id
    assert [c.session_header.session_id for c in await client.claims(SUPPLIER.address)] == [
        header.session_id
    ]
    events: list[ChainEvent] = await client.events(block.height, block.height)
    created = [e for e in events if e.type == "EventClaimCreated"]
    assert len(created) == 1 and created[0].attributes["session_id"] == header.session_id
    # the fee was paid from the supplier's account
    assert await client.queries.balance(SUPPLIER.address) < 1_000_000


async def test_a_claim_after_its_window_is_window_closed(
    node: LocalNode, client: PocketChain
) -> None:
    await advance_to(node, 9)
    result = await client.broadcast(
        [claim_msg(SUPPLIER.address, await header_of_session_1(client))]
    )
    assert not result.ok
    assert (result.codespace, result.code) == ("undefined", 1)
    assert result.reason is Rejection.WINDOW_CLOSED
    assert "claim window" in result.log


async def test_a_supplier_without_funds_is_insufficient_funds(
    node: LocalNode, client: PocketChain
) -> None:
    await advance_to(node, 7)
    header = await header_of_session_1(client)
    result = await client.broadcast([claim_msg(SUPPLIER2.address, header)])  # 5 upokt
    assert (result.codespace, result.code) == ("sdk", 5), result
    assert result.reason is Rejection.INSUFFICIENT_FUNDS


async def test_a_fee_below_the_minimum_is_insufficient_fee(node: LocalNode) -> None:
    await advance_to(node, 7)
    cheap = build_pocket_chain(
        settings_for(node, gas_price_upokt=Decimal("0.0001")), keys=lambda: KEYS
    )
    await cheap.start()
    try:
        result = await cheap.broadcast(
            [claim_msg(SUPPLIER.address, await header_of_session_1(cheap))]
        )
    finally:
        await cheap.close()
    assert (result.codespace, result.code) == ("sdk", 13), result
    assert result.reason is Rejection.INSUFFICIENT_FEE


async def test_an_invalid_message_is_invalid_content(node: LocalNode, client: PocketChain) -> None:
    await advance_to(node, 7)
    msg = claim_msg(SUPPLIER.address, await header_of_session_1(client))
    msg.root_hash = b"\x01" * 7  # ValidateBasic: a root is 48 bytes
    result = await client.broadcast([msg])
    assert not result.ok
    assert result.reason is Rejection.INVALID_CONTENT, result


async def test_a_signer_without_key_is_refused_before_the_node(client: PocketChain) -> None:
    unknown = Key.from_seed("no key for this one").address
    header = await header_of_session_1(client)
    result = await client.broadcast([claim_msg(unknown, header)])
    assert (result.codespace, result.code, result.tx_hash) == ("sdk", 4, "")
    assert unknown in result.log


async def test_ordered_txs_resync_after_a_wrong_sequence(node: LocalNode) -> None:
    await advance_to(node, 7)
    ordered = build_pocket_chain(settings_for(node, unordered=False), keys=lambda: KEYS)
    await ordered.start()
    try:
        header = await header_of_session_1(ordered)
        first = await ordered.broadcast([claim_msg(SUPPLIER.address, header)])
        assert first.ok, first
        # another signer of the same account uses sequence 1 behind the client's back
        raw = sign_tx(SUPPLIER, [claim_msg(SUPPLIER.address, header)], account_number=0, sequence=1)
        await node.app.check_tx(raw)
        second = await ordered.broadcast([claim_msg(SUPPLIER.address, header)])
        assert second.reason is Rejection.WRONG_SEQUENCE, second
        third = await ordered.broadcast([claim_msg(SUPPLIER.address, header)])  # re-read
        assert third.ok, third
    finally:
        await ordered.close()


async def test_the_follower_reconnects_across_a_node_restart_and_fills_the_gap(
    backend: RedisBackend,
) -> None:
    first = LocalNode(backend.client, make_config(), produce_blocks=False)
    endpoints = await first.start()
    restarted: LocalNode | None = None
    chain = build_pocket_chain(settings_for(first), keys=lambda: KEYS)
    try:
        start = (await chain.start()).height
        seen: list[int] = []
        before_restart, reached = asyncio.Event(), asyncio.Event()

        async def follow() -> None:
            async for block in chain.comet.blocks(start):
                seen.append(block.height)
                if block.height == start + 2:
                    before_restart.set()
                if block.height >= start + 5:
                    reached.set()
                    return

        follower = asyncio.create_task(follow())
        await first.produce_block()
        await first.produce_block()
        async with asyncio.timeout(10):
            await before_restart.wait()  # the websocket delivered both
        await first.stop()
        rpc_port = int(endpoints.rpc.rsplit(":", 1)[1])
        grpc_port = int(endpoints.grpc.rsplit(":", 1)[1])
        restarted = LocalNode(
            backend.client,
            make_config(rpc_port=rpc_port, grpc_port=grpc_port),
            produce_blocks=False,
        )
        await restarted.app.init()
        await restarted.app.produce_block()  # committed while no RPC server listens
        await restarted.app.produce_block()
        await restarted.start()
        await restarted.produce_block()  # published on the new websocket
        async with asyncio.timeout(20):
            await reached.wait()
        await follower
        assert seen == list(range(start + 1, start + 6))  # every height, once, in order
        latest = await chain.latest_block()
        assert latest.height == start + 5
        assert latest.hash == await restarted.app.chain.block_hash(start + 5)
    finally:
        await chain.close()
        if restarted is not None:
            await restarted.stop()
        else:
            await first.stop()
