"""Session grid and window maths: spec lifecycle.md §1.3-§1.5."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayminer.errors import InvalidProtocolArgumentError, RelayMinerError
from relayminer.protocol.gorand import seeded_int63
from relayminer.protocol.windows import (
    SharedParams,
    claim_window_close_height,
    claim_window_open_height,
    earliest_claim_commit_height,
    earliest_proof_commit_height,
    grace_period_end_height,
    pending_sessions,
    proof_seed_height,
    proof_window_close_height,
    proof_window_open_height,
    session_end_height,
    session_end_to_proof_close_blocks,
    session_number,
    session_start_height,
    settlement_height,
)

DETERMINISTIC = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HEIGHT_FUNCTIONS = [
    session_start_height,
    session_end_height,
    session_number,
    grace_period_end_height,
    claim_window_open_height,
    claim_window_close_height,
    proof_window_open_height,
    proof_window_close_height,
    settlement_height,
    earliest_claim_commit_height,
    earliest_proof_commit_height,
    proof_seed_height,
]

MAINNET_60 = SharedParams(
    num_blocks_per_session=60,
    grace_period_end_offset_blocks=10,
    claim_window_open_offset_blocks=11,
    claim_window_close_offset_blocks=10,
    proof_window_open_offset_blocks=1,
    proof_window_close_offset_blocks=10,
    compute_units_to_tokens_multiplier=145_990,
)


def window_table(p: SharedParams, h: int) -> dict[str, int]:
    return {
        "start": session_start_height(p, h),
        "end": session_end_height(p, h),
        "number": session_number(p, h),
        "grace_end": grace_period_end_height(p, h),
        "claim_open": claim_window_open_height(p, h),
        "claim_close": claim_window_close_height(p, h),
        "proof_open": proof_window_open_height(p, h),
        "proof_close": proof_window_close_height(p, h),
        "seed": proof_seed_height(p, h),
        "settlement": settlement_height(p, h),
        "earliest_claim": earliest_claim_commit_height(p, h, "pokt1supplier"),
        "earliest_proof": earliest_proof_commit_height(p, h, "pokt1supplier"),
    }


# ----------------------------------------------------------------------------- §1.5 examples


def test_example_a_code_defaults() -> None:
    p = SharedParams()
    assert session_end_to_proof_close_blocks(p) == 9
    assert window_table(p, 25) == {
        "start": 21,
        "end": 30,
        "number": 3,
        "grace_end": 31,
        "claim_open": 32,
        "claim_close": 36,
        "proof_open": 36,
        "proof_close": 40,
        "seed": 35,
        "settlement": 40,
        "earliest_claim": 32,
        "earliest_proof": 36,
    }
    assert pending_sessions(p) == 1


def test_example_b_historical_mainnet() -> None:
    p = MAINNET_60
    assert session_end_to_proof_close_blocks(p) == 32
    assert window_table(p, 714_921) == {
        "start": 714_901,
        "end": 714_960,
        "number": 11_916,
        "grace_end": 714_970,
        "claim_open": 714_972,
        "claim_close": 714_982,
        "proof_open": 714_983,
        "proof_close": 714_993,
        "seed": 714_982,  # = claim_close when PO = 1
        "settlement": 714_993,
        "earliest_claim": 714_972,
        "earliest_proof": 714_983,
    }
    assert pending_sessions(p) == 1


def test_example_c_anchored_change_60_to_20() -> None:
    old = MAINNET_60  # A=1, K=1
    # The governance tx at 880,000 lands in session 879,961-880,020 (# 14,667).
    assert session_start_height(old, 880_000) == 879_961
    assert session_end_height(old, 880_000) == 880_020
    assert session_number(old, 880_000) == 14_667
    # The session ending at 880,020 keeps the N=60 windows.
    assert claim_window_open_height(old, 880_020) == 880_032
    assert claim_window_close_height(old, 880_020) == 880_042
    assert proof_window_open_height(old, 880_020) == 880_043
    assert proof_window_close_height(old, 880_020) == 880_053

    # New epoch: A = next session start, K = current session number + 1.
    new = dataclasses.replace(
        old,
        num_blocks_per_session=20,
        session_grid_anchor_height=880_021,
        session_number_at_anchor=14_668,
    )
    assert session_start_height(new, 880_021) == 880_021
    assert session_number(new, 880_021) == 14_668
    assert window_table(new, 880_100) == {
        "start": 880_081,
        "end": 880_100,
        "number": 14_671,
        "grace_end": 880_110,
        "claim_open": 880_112,
        "claim_close": 880_122,
        "proof_open": 880_123,
        "proof_close": 880_133,
        "seed": 880_122,
        "settlement": 880_133,
        "earliest_claim": 880_112,
        "earliest_proof": 880_123,
    }
    assert pending_sessions(new) == 2  # ceil(32 / 20)


def test_relayer_stops_one_block_before_grace_end() -> None:
    # §1.5 (b): grace_end 714,970; the Go relayer accepts only while current < E + G - 1.
    e = session_end_height(MAINNET_60, 714_921)
    assert e + MAINNET_60.grace_period_end_offset_blocks - 1 == 714_969
    assert grace_period_end_height(MAINNET_60, 714_921) == 714_970


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("fn", HEIGHT_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("h", [0, -1, -(2**63)])
def test_non_positive_height_gives_zero(fn: object, h: int) -> None:
    assert callable(fn)
    assert fn(SharedParams(), h) == 0


@pytest.mark.parametrize("fn", HEIGHT_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", ["25", 25.0, True, None])
def test_height_must_be_int(fn: object, bad: object) -> None:
    assert callable(fn)
    with pytest.raises(TypeError):
        fn(SharedParams(), bad)


def test_session_boundaries_code_defaults() -> None:
    p = SharedParams()
    assert [session_start_height(p, h) for h in (1, 10, 11, 20, 21)] == [1, 1, 11, 11, 21]
    assert [session_number(p, h) for h in (1, 10, 11, 20, 21)] == [1, 1, 2, 2, 3]


@pytest.mark.parametrize("anchor", [0, -5, 1_000])
def test_anchor_fallback_to_genesis_grid(anchor: int) -> None:
    # A <= 0 (unset) or A after the query height: use A = 1, K = 1.
    p = SharedParams(session_grid_anchor_height=anchor, session_number_at_anchor=77)
    genesis = SharedParams()
    for h in (1, 25, 999):
        assert session_start_height(p, h) == session_start_height(genesis, h)
        assert session_number(p, h) == session_number(genesis, h)


def test_anchor_applies_from_its_height() -> None:
    p = SharedParams(session_grid_anchor_height=1_005, session_number_at_anchor=500)
    assert session_start_height(p, 1_004) == 1_001  # before the anchor: genesis grid
    assert session_number(p, 1_004) == 101
    assert session_start_height(p, 1_005) == 1_005
    assert session_number(p, 1_005) == 500
    assert session_start_height(p, 1_015) == 1_015
    assert session_number(p, 1_015) == 501


def test_seed_height_is_earliest_proof_commit_minus_one() -> None:
    p = MAINNET_60
    for h in (1, 60, 61, 714_921):
        assert proof_seed_height(p, h) == earliest_proof_commit_height(p, h) - 1
        assert proof_seed_height(p, h) == proof_window_open_height(p, h) - 1


# ----------------------------------------------------------------------------- historical spread


def test_spread_disabled_by_default_ignores_hash() -> None:
    p = MAINNET_60
    assert earliest_claim_commit_height(p, 714_921, "pokt1x", b"\x01" * 32) == 714_972
    assert earliest_proof_commit_height(p, 714_921, "pokt1x", b"\x01" * 32) == 714_983


def test_historical_spread_is_seeded_offset_within_window() -> None:
    p = MAINNET_60
    block_hash = bytes(range(32))
    supplier = "pokt1supplieraddress"
    r = seeded_int63(block_hash, supplier.encode())
    claim = earliest_claim_commit_height(p, 714_921, supplier, block_hash, distribute=True)
    proof = earliest_proof_commit_height(p, 714_921, supplier, block_hash, distribute=True)
    assert claim == 714_972 + r % 10
    assert proof == 714_983 + r % 10
    seed = proof_seed_height(p, 714_921, supplier, block_hash, distribute=True)
    assert seed == proof - 1
    # Different suppliers land on different offsets for some supplier in a small set.
    offsets = {
        earliest_claim_commit_height(p, 714_921, f"pokt1s{i}", block_hash, distribute=True)
        for i in range(20)
    }
    assert len(offsets) > 1
    assert all(714_972 <= o <= 714_982 for o in offsets)


def test_historical_spread_with_zero_length_window_is_window_open() -> None:
    p = SharedParams(claim_window_close_offset_blocks=0, proof_window_close_offset_blocks=0)
    assert earliest_claim_commit_height(p, 25, "a", b"\x00", distribute=True) == 32
    assert earliest_proof_commit_height(p, 25, "a", None, distribute=True) == 32


def test_historical_spread_type_errors() -> None:
    with pytest.raises(TypeError):
        earliest_claim_commit_height(SharedParams(), 25, "a", "hash", distribute=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        earliest_proof_commit_height(SharedParams(), 25, 7, b"", distribute=True)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- validation


def test_defaults_match_api_contract() -> None:
    p = SharedParams()
    assert dataclasses.asdict(p) == {
        "num_blocks_per_session": 10,
        "grace_period_end_offset_blocks": 1,
        "claim_window_open_offset_blocks": 1,
        "claim_window_close_offset_blocks": 4,
        "proof_window_open_offset_blocks": 0,
        "proof_window_close_offset_blocks": 4,
        "compute_units_to_tokens_multiplier": 42_000_000,
        "compute_unit_cost_granularity": 1_000_000,
        "session_grid_anchor_height": 1,
        "session_number_at_anchor": 1,
    }


def test_shared_params_is_frozen_and_hashable() -> None:
    p = SharedParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.num_blocks_per_session = 20  # type: ignore[misc]
    assert hash(p) == hash(SharedParams())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_blocks_per_session": 0}, "num_blocks_per_session"),
        ({"num_blocks_per_session": -3}, "num_blocks_per_session"),
        ({"grace_period_end_offset_blocks": -1}, "grace_period_end_offset_blocks"),
        (
            {
                "num_blocks_per_session": 5,
                "grace_period_end_offset_blocks": 5,
                "claim_window_open_offset_blocks": 5,
            },
            "grace_period_end_offset_blocks",
        ),
        ({"grace_period_end_offset_blocks": 2}, "claim_window_open_offset_blocks"),
        ({"claim_window_open_offset_blocks": -1}, "claim_window_open_offset_blocks"),
        ({"claim_window_close_offset_blocks": -1}, "claim_window_close_offset_blocks"),
        ({"proof_window_open_offset_blocks": -1}, "proof_window_open_offset_blocks"),
        ({"proof_window_close_offset_blocks": -4}, "proof_window_close_offset_blocks"),
        ({"compute_units_to_tokens_multiplier": 0}, "compute_units_to_tokens_multiplier"),
        ({"compute_units_to_tokens_multiplier": 2**64}, "compute_units_to_tokens_multiplier"),
        ({"compute_unit_cost_granularity": 0}, "compute_unit_cost_granularity"),
        ({"compute_unit_cost_granularity": -10}, "compute_unit_cost_granularity"),
        ({"num_blocks_per_session": 2**63}, "num_blocks_per_session"),
        (
            {"session_grid_anchor_height": 100, "session_number_at_anchor": 0},
            "session_number_at_anchor",
        ),
        ({"session_grid_anchor_height": 2**63}, "session_grid_anchor_height"),
        (
            {
                "grace_period_end_offset_blocks": 0,
                "claim_window_open_offset_blocks": 0,
                "claim_window_close_offset_blocks": 0,
                "proof_window_open_offset_blocks": 0,
                "proof_window_close_offset_blocks": 0,
            },
            "claim_window_open_offset_blocks",
        ),
    ],
)
def test_invalid_shared_params_name_the_field(overrides: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        SharedParams(**overrides)
    err = info.value
    assert err.argument == field
    assert field in str(err)
    assert isinstance(err, ValueError)
    assert isinstance(err, RelayMinerError)


@pytest.mark.parametrize("bad", ["10", 10.0, True, None])
def test_shared_params_field_types(bad: object) -> None:
    with pytest.raises(TypeError, match="num_blocks_per_session"):
        SharedParams(num_blocks_per_session=bad)  # type: ignore[arg-type]


def test_unanchored_params_accept_zero_session_number() -> None:
    p = SharedParams(session_grid_anchor_height=0, session_number_at_anchor=0)
    assert session_number(p, 11) == 2


# ----------------------------------------------------------------------------- properties


@st.composite
def params_and_height(draw: st.DrawFn) -> tuple[SharedParams, int]:
    n = draw(st.integers(1, 200))
    g = draw(st.integers(0, n - 1))
    co = draw(st.integers(g, g + 40))
    cc = draw(st.integers(0, 40))
    po = draw(st.integers(0, 40))
    pc = draw(st.integers(0 if co + cc + po > 0 else 1, 40))
    anchor = draw(st.integers(-5, 2_000_000))
    k = draw(st.integers(1, 1_000_000))
    h = draw(st.one_of(st.integers(1, 2_000_000), st.integers(1, 10**12)))
    p = SharedParams(
        num_blocks_per_session=n,
        grace_period_end_offset_blocks=g,
        claim_window_open_offset_blocks=co,
        claim_window_close_offset_blocks=cc,
        proof_window_open_offset_blocks=po,
        proof_window_close_offset_blocks=pc,
        compute_units_to_tokens_multiplier=draw(st.integers(1, 2**64 - 1)),
        compute_unit_cost_granularity=draw(st.sampled_from([1, 10, 1_000_000])),
        session_grid_anchor_height=anchor,
        session_number_at_anchor=k,
    )
    return p, h


def effective_anchor(p: SharedParams, h: int) -> tuple[int, int]:
    a = p.session_grid_anchor_height
    if a <= 0 or a > h:
        return 1, 1
    return a, p.session_number_at_anchor


@DETERMINISTIC
@given(params_and_height())
def test_session_contains_height_and_is_on_grid(case: tuple[SharedParams, int]) -> None:
    p, h = case
    n = p.num_blocks_per_session
    start, end = session_start_height(p, h), session_end_height(p, h)
    a, k = effective_anchor(p, h)
    assert start <= h <= end
    assert end - start + 1 == n
    assert (start - a) % n == 0
    assert start >= a
    assert session_number(p, h) == k + (start - a) // n
    # Every height of the session on the same grid maps to the same session.
    for x in {start, h, end}:
        if effective_anchor(p, x) != (a, k):
            continue  # an anchor inside a fallback session starts a new grid there
        assert session_start_height(p, x) == start
        assert session_number(p, x) == session_number(p, h)


@DETERMINISTIC
@given(params_and_height())
def test_windows_are_ordered(case: tuple[SharedParams, int]) -> None:
    p, h = case
    end = session_end_height(p, h)
    grace = grace_period_end_height(p, h)
    c_open, c_close = claim_window_open_height(p, h), claim_window_close_height(p, h)
    p_open, p_close = proof_window_open_height(p, h), proof_window_close_height(p, h)
    assert end <= grace < c_open <= c_close <= p_open <= p_close
    assert settlement_height(p, h) == p_close
    assert p_close == end + session_end_to_proof_close_blocks(p) + 1
    assert proof_seed_height(p, h) == p_open - 1
    assert earliest_claim_commit_height(p, h) == c_open
    assert earliest_proof_commit_height(p, h) == p_open
    # ceil(T / N) sessions' windows can overlap.
    t = session_end_to_proof_close_blocks(p)
    assert (pending_sessions(p) - 1) * p.num_blocks_per_session < t
    assert t <= pending_sessions(p) * p.num_blocks_per_session


@DETERMINISTIC
@given(params_and_height())
def test_next_session_number_increments(case: tuple[SharedParams, int]) -> None:
    p, h = case
    end = session_end_height(p, h)
    nxt = end + 1
    if effective_anchor(p, nxt) != effective_anchor(p, h):
        return  # the anchor takes effect in between: a different grid, checked elsewhere
    assert session_start_height(p, nxt) == nxt
    assert session_number(p, nxt) == session_number(p, h) + 1
    assert session_end_height(p, nxt) == end + p.num_blocks_per_session


@DETERMINISTIC
@given(params_and_height(), st.binary(min_size=0, max_size=32), st.text(max_size=20))
def test_historical_spread_stays_in_window(
    case: tuple[SharedParams, int], block_hash: bytes, supplier: str
) -> None:
    p, h = case
    claim = earliest_claim_commit_height(p, h, supplier, block_hash, distribute=True)
    proof = earliest_proof_commit_height(p, h, supplier, block_hash, distribute=True)
    assert claim_window_open_height(p, h) <= claim <= claim_window_close_height(p, h)
    assert proof_window_open_height(p, h) <= proof <= proof_window_close_height(p, h)
