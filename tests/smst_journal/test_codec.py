"""The journal's leaf value encoding and argument building (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayminer.keys import Namespace
from relayminer.smst.journal import (
    decode_leaf_value,
    encode_leaf_value,
    insert_args,
    journal_keys,
)
from relayminer.smst.nodes import SMSTError


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(min_size=1, max_size=300))
def test_value_round_trip(weight: int, relay: bytes) -> None:
    value = encode_leaf_value(weight, relay)
    assert decode_leaf_value(value) == (weight, relay)
    assert len(value) == len(relay) + (1 if weight < 128 else 1 + (weight.bit_length() + 7) // 8)


@pytest.mark.parametrize(
    ("weight", "head"),
    [(0, "00"), (127, "7f"), (128, "ff80"), (1000, "fe03e8"), (2**64 - 1, "f8" + "ff" * 8)],
)
def test_weight_is_a_gob_uint(weight: int, head: str) -> None:
    assert encode_leaf_value(weight, b"\x0a").hex() == head + "0a"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty value"),
        (b"\x2a", "no relay bytes"),
        (b"\xfe\x03", "no relay bytes"),
        (b"\xf0" + bytes(20), "not a gob uint"),
    ],
)
def test_decode_rejects_what_is_not_a_leaf(value: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_leaf_value(value)


def test_encode_refuses_bad_input() -> None:
    with pytest.raises(SMSTError, match="non-empty"):
        encode_leaf_value(1, b"")
    with pytest.raises(ValueError, match="out of range"):
        encode_leaf_value(-1, b"r")
    with pytest.raises(ValueError, match="out of range"):
        encode_leaf_value(2**64, b"r")


def test_insert_args_are_hash_value_pairs() -> None:
    h1, h2 = bytes(range(32)), bytes(32)
    assert insert_args([(h1, b"r1", 1), (h2, b"r2", 300)]) == [
        h1,
        b"\x01r1",
        h2,
        b"\xfe\x01\x2cr2",
    ]
    with pytest.raises(SMSTError, match="32 bytes"):
        insert_args([(h1, b"r1", 1), (b"short", b"r2", 1)])


def test_keys_follow_the_namespace() -> None:
    keys = journal_keys("pokt1s", "sid")
    assert (keys.leaves, keys.root, keys.stats) == (
        "ha:smst:pokt1s:sid:leaves",
        "ha:smst:pokt1s:sid:root",
        "ha:smst:pokt1s:sid:stats",
    )
    assert journal_keys("p", "s", Namespace(base_prefix="prod")).leaves == "prod:smst:p:s:leaves"
