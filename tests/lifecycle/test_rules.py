"""The lifecycle's transition rules (pure) and the rebroadcast store."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayminer.lifecycle.manager import LifecycleConfig, LifecycleManager, PassReport
from relayminer.lifecycle.rebroadcast import CLAIM, PROOF, RebroadcastEntry, RebroadcastStore
from relayminer.lifecycle.rules import Action, Windows, next_action
from relayminer.protocol.windows import SharedParams
from relayminer.sessions.model import SessionState as S
from tests.conftest import RedisBackend
from tests.lifecycle.support import PARAMS, SUP1, World

W = Windows.for_session(PARAMS, session_end_height=4)  # claim 6..10, proof 10..14, seed 9


def test_windows_of_the_test_params() -> None:
    assert (W.claim_open, W.claim_close, W.proof_open, W.proof_close) == (6, 10, 10, 14)
    assert (W.proof_seed_height, W.settlement_height) == (9, 14)
    d = Windows.for_session(SharedParams(), 30)  # spec §1.5 (a)
    assert (d.claim_open, d.claim_close, d.proof_open, d.proof_close, d.proof_seed_height) == (
        32,
        36,
        36,
        40,
        35,
    )


@pytest.mark.parametrize(
    ("state", "claim_tx", "proof_tx", "height", "action"),
    [
        (S.ACTIVE, "", "", 4, Action.NONE),
        (S.ACTIVE, "", "", 5, Action.NONE),
        (S.ACTIVE, "", "", 6, Action.CLAIM),
        (S.ACTIVE, "", "", 8, Action.CLAIM),
        (S.ACTIVE, "", "", 9, Action.NONE),  # inside the safety margin: wait for the timeout
        (S.ACTIVE, "", "", 10, Action.CLAIM_WINDOW_CLOSED),
        (S.CLAIMING, "", "", 7, Action.CLAIM),  # re-driven after a restart (Go: Q3)
        (S.CLAIMING, "", "", 10, Action.CLAIM_WINDOW_CLOSED),
        (S.CLAIMING, "TX", "", 7, Action.NONE),  # claim broadcast, state write lost
        (S.CLAIMED, "TX", "", 9, Action.NONE),
        (S.CLAIMED, "TX", "", 10, Action.PROVE),
        (S.CLAIMED, "TX", "", 12, Action.PROVE),
        (S.CLAIMED, "TX", "", 13, Action.NONE),
        (S.CLAIMED, "TX", "", 14, Action.PROOF_WINDOW_CLOSED),
        (S.PROVING, "TX", "", 11, Action.PROVE),  # re-driven
        (S.PROVING, "TX", "PTX", 11, Action.MARK_PROVED),  # proof broadcast, state write lost
        (S.PROVING, "TX", "", 14, Action.PROOF_WINDOW_CLOSED),
        (S.PROVED, "TX", "PTX", 11, Action.NONE),
        (S.CLAIM_SKIPPED, "", "", 7, Action.NONE),
    ],
)
def test_transition_table(
    state: S, claim_tx: str, proof_tx: str, height: int, action: Action
) -> None:
    assert next_action(state, claim_tx, proof_tx, height, W, safety_blocks=1) is action


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.sampled_from(list(S)), st.booleans(), st.booleans(), st.integers(1, 40), st.integers(0, 3)
)
def test_terminal_states_never_act_and_closed_windows_never_submit(
    state: S, claim_tx: bool, proof_tx: bool, height: int, safety: int
) -> None:
    action = next_action(
        state, "T" if claim_tx else "", "P" if proof_tx else "", height, W, safety_blocks=safety
    )
    if state.is_terminal:
        assert action is Action.NONE
    if action is Action.CLAIM:
        assert W.claim_open <= height and height + 1 + safety <= W.claim_close
    if action is Action.PROVE:
        assert W.proof_open <= height and height + 1 + safety <= W.proof_close
    if action is Action.CLAIM_WINDOW_CLOSED:
        assert height >= W.claim_close
    if action is Action.PROOF_WINDOW_CLOSED:
        assert height >= W.proof_close


@pytest.mark.parametrize(
    "kwargs", [{"max_submit_attempts": 0}, {"submit_safety_blocks": -1}, {"max_rebroadcasts": 1.5}]
)
def test_bad_lifecycle_config_names_the_field(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LifecycleConfig(**kwargs)  # type: ignore[arg-type]


def test_resend_is_due_only_after_the_inclusion_deadline() -> None:
    never = RebroadcastEntry(
        "s", b"m", submit_height=6, tx_hash="", original_tx_hash="", service_id="svc"
    )
    sent = RebroadcastEntry("s", b"m", 6, "T", "T", "svc")
    assert not never.resend_due(6, 2)  # not in the mempool: resend from the next block
    assert never.resend_due(7, 2)
    assert not sent.resend_due(7, 2)  # may still be on its way
    assert sent.resend_due(8, 2)  # missing after its deadline


async def test_rebroadcast_store_round_trip_and_index(backend: RedisBackend) -> None:
    store = RebroadcastStore(backend.client, SUP1, ttl_seconds=3600)
    entry = RebroadcastEntry("sess-1", b"\x00\x01msg", 6, "TX1", "TX1", "svc", resends=0)
    await store.put(CLAIM, 4, entry)
    await store.put(CLAIM, 8, RebroadcastEntry("sess-2", b"m2", 10, "T", "T", "svc"))
    await RebroadcastStore(backend.client, "pokt1other").put(CLAIM, 4, entry)
    assert await store.groups(CLAIM) == [4, 8]
    assert await store.groups(PROOF) == []
    assert await store.entries(CLAIM, 4) == {"sess-1": entry}
    raw = await backend.client.hget("ha:miner:rebroadcast:{claim}:pokt1sup1:4", "sess-1")
    assert raw is not None and b'"m": "AAFtc2c="' in raw  # Go's JSON of []byte is base64
    assert 3590 <= await backend.client.ttl("ha:miner:rebroadcast:{claim}:index") <= 3600
    await store.delete(CLAIM, 4, "sess-1")
    assert await store.groups(CLAIM) == [8]  # the emptied group left the index
    await backend.client.delete("ha:miner:rebroadcast:{claim}:pokt1sup1:8")  # expired
    assert await store.entries(CLAIM, 8) == {}
    assert await store.groups(CLAIM) == []


async def test_run_loop_passes_once_per_new_block(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        stop = asyncio.Event()
        heights: list[int] = []
        passed: dict[int, asyncio.Event] = {}

        def on_pass(report: PassReport) -> None:
            heights.append(report.height)
            passed.setdefault(report.height, asyncio.Event()).set()

        manager = LifecycleManager(backend.client, SUP1, world.chain, on_pass=on_pass)
        task = asyncio.create_task(manager.run(stop))
        for _ in range(4):
            block = await world.chain.produce_block()
            # The loop wakes on the new block (in-process notification or pub/sub).
            await asyncio.wait_for(passed.setdefault(block.height, asyncio.Event()).wait(), 30)
        stop.set()
        await asyncio.wait_for(task, 30)
        assert heights[-4:] == [2, 3, 4, 5]
        assert heights == sorted(set(heights))  # one pass per height, in order
    finally:
        await world.close()
