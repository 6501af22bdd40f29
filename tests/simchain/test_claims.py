"""MsgCreateClaim on the simulated chain: windows, session checks, CUPR, upserts, atomic txs,
mempool drops (spec lifecycle.md §1.3, §6.1)."""

from __future__ import annotations

import hashlib

import pytest

from relayminer.chain.base import Chain, SessionHeader
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.errors import SimSessionError, UnknownServiceError
from relayminer.chain.sim.state import encode_tx
from relayminer.proto import poktroll_pb2
from tests.simchain.conftest import ChainFactory
from tests.simchain.support import (
    APP,
    APP2,
    CLAIM_CLOSE,
    CLAIM_OPEN,
    CUPR,
    SUP1,
    SUP2,
    SUP3,
    SVC,
    SVC_HARD,
    advance_to,
    claim,
    event_types,
    fake_root,
    make_config,
)


async def header_of(
    chain: SimulatedChain, app: str = APP, svc: str = SVC, h: int = 1
) -> SessionHeader:
    return (await chain.get_session(app, svc, h)).header


def good_root(count: int = 5) -> bytes:
    return fake_root(count, count * CUPR)


async def test_simulated_chain_satisfies_the_chain_protocol(chain: SimulatedChain) -> None:
    assert isinstance(chain, Chain)
    genesis = await chain.latest_block()
    assert genesis.height == 1
    assert genesis.hash == await chain.block_hash(1)
    assert len(genesis.hash) == 32


@pytest.mark.parametrize("landing", [CLAIM_OPEN - 1, CLAIM_OPEN, 7, CLAIM_CLOSE, CLAIM_CLOSE + 1])
async def test_claim_window_is_inclusive_at_both_ends(chain: SimulatedChain, landing: int) -> None:
    header = await header_of(chain)
    await advance_to(chain, landing - 1)  # broadcast at H lands at H + 1
    result = await chain.broadcast([claim(SUP1, header, good_root())])
    inside = CLAIM_OPEN <= landing <= CLAIM_CLOSE
    if not inside:
        assert result.code != 0
        assert "claim window" in result.log
        assert await chain.mempool_size() == 0
        return
    assert result.ok, result.log
    block = await chain.produce_block()
    assert block.height == landing
    stored = await chain.get_claim(SUP1, header.session_id)
    assert stored is not None
    assert stored.root_hash == good_root()
    assert stored.session_header == header
    assert stored.proof_validation_status == poktroll_pb2.PENDING_VALIDATION
    record = await chain.tx_result(result.tx_hash)
    assert record is not None and record.code == 0 and record.height == landing
    events = await chain.events(landing, landing)
    assert event_types(events) == ["EventClaimCreated"]
    attrs = events[0].attributes
    assert attrs["num_relays"] == "5"
    assert attrs["claimed_compute_units"] == "50"
    assert attrs["claimed_upokt"] == "50"
    assert attrs["session_id"] == header.session_id


async def test_deliver_tx_rechecks_the_window_at_the_block_height(chain: SimulatedChain) -> None:
    """A tx checked against an older height (here pushed straight into the mempool) fails at
    DeliverTx when its block is past the window; nothing applies."""
    header = await header_of(chain)
    await advance_to(chain, CLAIM_CLOSE)
    raw = encode_tx([claim(SUP1, header, good_root())])
    await chain._redis.rpush(chain.keys.mempool, raw)
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is None
    events = await chain.events(CLAIM_CLOSE + 1, CLAIM_CLOSE + 1)
    assert event_types(events) == ["EventTxFailed"]
    assert "claim window" in events[0].attributes["log"]
    summary = await chain.summary()
    assert summary.txs_failed == 1 and summary.claims_created == 0


async def test_sessions_are_deterministic(chain: SimulatedChain) -> None:
    s1 = await chain.get_session(APP, SVC, 1)
    s4 = await chain.get_session(APP, SVC, 4)
    s5 = await chain.get_session(APP, SVC, 5)
    assert s1 == s4
    h = s1.header
    assert (h.application_address, h.service_id) == (APP, SVC)
    assert (h.session_start_block_height, h.session_end_block_height) == (1, 4)
    assert h.session_id == hashlib.sha256(f"{APP}/{SVC}/1".encode()).hexdigest()
    assert s1.suppliers == (SUP1, SUP2)
    assert s5.header.session_start_block_height == 5
    assert s5.header.session_id != h.session_id
    hard = await chain.get_session(APP2, SVC_HARD, 3)
    assert hard.suppliers == (SUP3,)
    with pytest.raises(SimSessionError, match="not staked"):
        await chain.get_session(APP, SVC_HARD, 1)
    with pytest.raises(SimSessionError, match="unknown application"):
        await chain.get_session("pokt1nobody", SVC, 1)
    with pytest.raises(SimSessionError, match="unknown service"):
        await chain.get_session(APP, "nope", 1)
    with pytest.raises(UnknownServiceError):
        await chain.service("nope", 1)
    svc = await chain.service(SVC, 1)
    assert svc.compute_units_per_relay == CUPR


async def test_suppliers_per_session_are_capped_deterministically(
    make_chain: ChainFactory,
) -> None:
    chain = await make_chain(make_config(num_suppliers_per_session=1))
    picked = {(await chain.get_session(APP, SVC, h)).suppliers for h in range(1, 40, 4)}
    assert all(len(s) == 1 and s[0] in (SUP1, SUP2) for s in picked)
    assert len(picked) == 2  # over 10 sessions both suppliers get picked
    again = [(await chain.get_session(APP, SVC, h)).suppliers for h in range(1, 40, 4)]
    assert again == [(await chain.get_session(APP, SVC, h)).suppliers for h in range(1, 40, 4)]


def _with(header: SessionHeader, **changes: object) -> SessionHeader:
    h = SessionHeader()
    h.CopyFrom(header)
    for name, value in changes.items():
        setattr(h, name, value)
    return h


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"session_id": "deadbeef"}, "session header mismatch"),
        ({"session_end_block_height": 5}, "session header mismatch"),
        ({"session_start_block_height": 2}, "session header mismatch"),
        ({"application_address": "pokt1nobody"}, "session not found"),
        ({"service_id": SVC_HARD}, "session not found"),
    ],
)
async def test_claim_header_must_equal_the_on_chain_session(
    chain: SimulatedChain, change: dict[str, object], expected: str
) -> None:
    header = _with(await header_of(chain), **change)
    await advance_to(chain, CLAIM_OPEN - 1)
    result = await chain.broadcast([claim(SUP1, header, good_root())])
    assert result.code != 0
    assert expected in result.log


async def test_claim_supplier_must_be_known_and_in_the_session(chain: SimulatedChain) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    unknown = await chain.broadcast([claim("pokt1stranger", header, good_root())])
    assert unknown.code != 0 and "unknown supplier" in unknown.log
    outsider = await chain.broadcast([claim(SUP3, header, good_root())])
    assert outsider.code != 0 and "not in session" in outsider.log
    assert await chain.mempool_size() == 0


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        (b"\x11" * 40, "48 bytes"),
        (fake_root(0, 10), "zero relay count"),
        (fake_root(5, 0), "zero compute units"),
        (fake_root(5, 49), "compute units"),
        (fake_root(5, 5), "compute units"),
    ],
)
async def test_claim_root_and_cupr_checks(
    chain: SimulatedChain, root: bytes, expected: str
) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    result = await chain.broadcast([claim(SUP1, header, root)])
    assert result.code != 0
    assert expected in result.log


async def test_cupr_uses_the_service_of_the_claim(chain: SimulatedChain) -> None:
    header = await header_of(chain, APP2, SVC_HARD)
    await advance_to(chain, CLAIM_OPEN - 1)
    bad = await chain.broadcast([claim(SUP3, header, fake_root(4, 40))])
    assert "compute units" in bad.log
    good = await chain.broadcast([claim(SUP3, header, fake_root(4, 12))])
    assert good.ok, good.log


async def test_claims_are_upserts(chain: SimulatedChain) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    assert (await chain.broadcast([claim(SUP1, header, good_root(5))])).ok
    await chain.produce_block()
    assert (await chain.broadcast([claim(SUP1, header, good_root(7))])).ok
    await chain.produce_block()
    claims = await chain.claims(SUP1)
    assert len(claims) == 1
    assert claims[0].root_hash == good_root(7)
    events = await chain.events(1, CLAIM_OPEN + 1)
    assert event_types(events) == ["EventClaimCreated", "EventClaimUpdated"]
    assert events[1].attributes["num_relays"] == "7"
    summary = await chain.summary()
    assert (summary.claims_created, summary.claims_updated) == (1, 1)


async def test_a_tx_is_atomic_at_check_tx(chain: SimulatedChain) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    result = await chain.broadcast(
        [claim(SUP1, header, good_root()), claim(SUP2, header, fake_root(5, 7))]
    )
    assert result.code != 0 and "compute units" in result.log
    assert await chain.mempool_size() == 0
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is None


async def test_a_tx_is_atomic_at_deliver_tx(chain: SimulatedChain) -> None:
    """One bad message fails the whole tx at DeliverTx; other txs of the block still apply."""
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    bad = encode_tx([claim(SUP1, header, good_root()), claim(SUP2, header, fake_root(5, 7))])
    await chain._redis.rpush(chain.keys.mempool, bad)
    ok = await chain.broadcast([claim(SUP2, header, good_root(3))])
    assert ok.ok
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is None
    stored = await chain.get_claim(SUP2, header.session_id)
    assert stored is not None and stored.root_hash == good_root(3)
    events = await chain.events(CLAIM_OPEN, CLAIM_OPEN)
    assert event_types(events) == ["EventTxFailed", "EventClaimCreated"]
    assert "compute units" in events[0].attributes["log"]
    assert await chain.mempool_size() == 0


async def test_forced_drop_answers_ok_but_never_lands(chain: SimulatedChain) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    await chain.drop_next_txs(1)
    msgs = [claim(SUP1, header, good_root())]
    dropped = await chain.broadcast(msgs)
    assert dropped.code == 0 and dropped.log == ""
    assert len(dropped.tx_hash) == 64 and dropped.tx_hash == dropped.tx_hash.upper()
    assert await chain.mempool_size() == 0
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is None
    assert await chain.tx_result(dropped.tx_hash) is None
    # The resend (same msgs, same hash) lands: only one drop was forced.
    resent = await chain.broadcast(msgs)
    assert resent.ok and resent.tx_hash == dropped.tx_hash
    await chain.produce_block()
    assert await chain.get_claim(SUP1, header.session_id) is not None
    summary = await chain.summary()
    assert (summary.txs_accepted, summary.txs_dropped, summary.txs_executed) == (2, 1, 1)


async def test_rejected_txs_do_not_consume_forced_drops(chain: SimulatedChain) -> None:
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    await chain.drop_next_txs(1)
    assert (await chain.broadcast([claim(SUP1, header, fake_root(1, 1))])).code != 0
    assert (await chain.broadcast([claim(SUP1, header, good_root())])).ok
    assert await chain.mempool_size() == 0  # the drop hit the accepted tx


@pytest.mark.parametrize("drop_rate", [0.0, 1.0])
async def test_drop_rate(make_chain: ChainFactory, drop_rate: float) -> None:
    chain = await make_chain(make_config(drop_rate=drop_rate))
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    for n in range(1, 6):
        assert (await chain.broadcast([claim(SUP1, header, good_root(n))])).ok
    assert await chain.mempool_size() == (0 if drop_rate else 5)


async def test_drop_rate_is_deterministic_per_seed(make_chain: ChainFactory) -> None:
    chain = await make_chain(make_config(drop_rate=0.5, seed=11))
    header = await header_of(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    kept = []
    for n in range(1, 21):
        await chain.broadcast([claim(SUP1, header, good_root(n))])
        kept.append(await chain.mempool_size())
    # Recompute the documented rule: SHA-256(seed:seq:hash) < drop_rate.
    expected, size = [], 0
    for seq, n in enumerate(range(1, 21), start=1):
        th = hashlib.sha256(encode_tx([claim(SUP1, header, good_root(n))])).hexdigest().upper()
        u = int.from_bytes(hashlib.sha256(f"11:{seq}:{th}".encode()).digest()[:8], "big") / 2**64
        size += u >= 0.5
        expected.append(size)
    assert kept == expected
    assert 0 < size < 20


async def test_empty_tx_is_rejected(chain: SimulatedChain) -> None:
    result = await chain.broadcast([])
    assert result.code != 0
