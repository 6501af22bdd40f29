"""Relay mining difficulty: spec lifecycle.md §6.2."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayminer.errors import InvalidProtocolArgumentError
from relayminer.protocol.relay_difficulty import (
    BASE_RELAY_DIFFICULTY_TARGET_HASH,
    difficulty_multiplier,
    is_relay_volume_applicable,
    next_difficulty_target_hash,
    next_relays_ema,
)

DETERMINISTIC = settings(derandomize=True, max_examples=300, deadline=None)
BASE = BASE_RELAY_DIFFICULTY_TARGET_HASH


def test_base_target() -> None:
    assert BASE == b"\xff" * 32
    assert difficulty_multiplier(BASE) == 1


def test_volume_applicable_is_strictly_less() -> None:
    target = b"\x10" + b"\x00" * 31
    assert is_relay_volume_applicable(b"\x0f" + b"\xff" * 31, target)
    assert not is_relay_volume_applicable(target, target)
    assert not is_relay_volume_applicable(b"\x10" + b"\x00" * 30 + b"\x01", target)
    assert not is_relay_volume_applicable(BASE, BASE)  # the all-ones hash is never mined


def test_target_unchanged_when_ema_equals_target() -> None:
    prev = b"\x12" * 32
    assert next_difficulty_target_hash(prev, 100_000, 100_000) is prev


def test_target_scales_down_with_more_relays() -> None:
    new = next_difficulty_target_hash(BASE, 100_000, 400_000)
    assert len(new) == 32
    assert int.from_bytes(new, "big") == (2**256 - 1) // 4
    assert new[:1] == b"\x3f"
    assert difficulty_multiplier(new) == Fraction(2**256 - 1, (2**256 - 1) // 4)


def test_target_is_left_padded_to_previous_length() -> None:
    new = next_difficulty_target_hash(BASE, 1, 2**40)
    assert len(new) == 32
    assert new[:5] == b"\x00" * 5
    assert int.from_bytes(new, "big") == (2**256 - 1) // 2**40


def test_target_is_capped_at_base() -> None:
    assert next_difficulty_target_hash(BASE, 100_000, 10) == BASE
    half = b"\x7f" + b"\xff" * 31
    # Scaling up within 32 bytes is allowed (may stay below the base).
    assert next_difficulty_target_hash(half, 2, 1) == b"\xff" * 31 + b"\xfe"


def test_target_zero_ema_is_rejected() -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        next_difficulty_target_hash(BASE, 100_000, 0)
    assert info.value.argument == "new_relays_ema"


def test_target_argument_errors() -> None:
    with pytest.raises(InvalidProtocolArgumentError):
        next_difficulty_target_hash(BASE, -1, 10)
    with pytest.raises(TypeError):
        next_difficulty_target_hash("ff", 1, 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidProtocolArgumentError):
        difficulty_multiplier(b"")


@pytest.mark.parametrize(
    ("prev", "relays", "expected"),
    [
        (0, 0, 0),
        (10, 10, 10),
        (0, 9, 0),  # 0.9 truncates to 0
        (0, 10, 1),
        (100, 0, 89),  # 0.9 * 100 is just below 90 in 64-bit big.Float arithmetic
        (100_000, 200_000, 110_000),
    ],
)
def test_relays_ema(prev: int, relays: int, expected: int) -> None:
    assert next_relays_ema(prev, relays) == expected


@DETERMINISTIC
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_relays_ema_is_close_to_exact(prev: int, relays: int) -> None:
    exact = Fraction(1, 10) * relays + Fraction(9, 10) * prev
    got = next_relays_ema(prev, relays)
    assert 0 <= got <= 2**64 - 1
    # alpha is the double nearest 0.1 (relative error ~2^-54); the 64-bit roundings add less;
    # truncation to an integer costs < 1.
    assert abs(got - exact) <= 1 + exact / 2**52


def test_relays_ema_argument_errors() -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        next_relays_ema(-1, 5)
    assert info.value.argument == "prev_relays_ema"
    with pytest.raises(TypeError):
        next_relays_ema(1, 2.0)  # type: ignore[arg-type]
