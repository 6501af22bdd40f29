"""Go math/rand v1 port and Go binary.Varint: spec lifecycle.md §2.3."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayminer.errors import InvalidProtocolArgumentError, RelayMinerError
from relayminer.protocol._rng_cooked import RNG_COOKED, RNG_LEN
from relayminer.protocol.gorand import (
    GoRand,
    _seedrand,
    first_uint64,
    go_uvarint,
    go_varint,
    go_varint_n,
    seed_from_parts,
    seeded_float64,
    seeded_int63,
)

DETERMINISTIC = settings(derandomize=True, max_examples=300, deadline=None)
M = 2**31 - 1


def first(seed: int, k: int = 5) -> list[int]:
    r = GoRand(seed)
    return [r.uint64() for _ in range(k)]


# ----------------------------------------------------------------------------- vectors


def test_new_source_1_first_two_int63() -> None:
    r = GoRand(1)
    assert r.int63() == 5577006791947779410
    assert r.int63() == 8674665223082153551


def test_seeded_hello_is_seed_22() -> None:
    # "seeded('hello')" = poktroll SeededFloat64(b"hello"): binary.Varint(SHA-256("hello")).
    digest = hashlib.sha256(b"hello").digest()
    assert digest[0] == 0x2C  # one-byte varint 44 -> zig-zag 22
    assert go_varint_n(digest) == (22, 1)
    assert seed_from_parts(b"hello") == 22
    assert GoRand(22).float64() == 0.2532937422296407
    assert seeded_float64(b"hello") == 0.2532937422296407
    assert seeded_float64(b"he", b"llo") == 0.2532937422296407  # parts are concatenated


def test_seeded_int63_is_first_int63() -> None:
    assert seeded_int63(b"hello") == GoRand(22).int63()


def test_cooked_table_shape() -> None:
    assert len(RNG_COOKED) == RNG_LEN == 607
    assert RNG_COOKED[0] == -4181792142133755926
    assert RNG_COOKED[-1] == 4152330101494654406
    assert all(-(2**63) <= v < 2**63 for v in RNG_COOKED)
    assert any(v < 0 for v in RNG_COOKED)  # the full 64-bit table (Go >= 1.8), not the 63-bit one


# ----------------------------------------------------------------------------- seeding


def test_zero_seed_is_replaced() -> None:
    assert first(0) == first(89_482_311)


def test_seed_is_reduced_modulo_2_pow_31_minus_1() -> None:
    assert first(M) == first(0)
    assert first(M + 1) == first(1)
    assert first(2**63 - 1) == first((2**63 - 1) % M)
    assert first(5 * M + 7) == first(7)


def test_negative_seed_adds_modulus() -> None:
    assert first(-1) == first(M - 1)
    assert first(-425079) == first(M - 425079)
    assert first(-(2**63)) == first((-(2**63)) % M)
    assert first(-M) == first(0)


def test_different_seeds_give_different_streams() -> None:
    assert first(1) != first(2)


def test_reseed_restarts_the_stream() -> None:
    r = GoRand(42)
    a = [r.int63() for _ in range(700)]  # wraps around the 607-word register
    r.seed(42)
    assert [r.int63() for _ in range(700)] == a


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1, 10**30])
def test_seed_outside_int64_is_rejected(seed: int) -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        GoRand(seed)
    assert info.value.argument == "seed"
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RelayMinerError)


@pytest.mark.parametrize("seed", [1.0, "1", True, None])
def test_seed_must_be_int(seed: object) -> None:
    with pytest.raises(TypeError):
        GoRand(seed)  # type: ignore[arg-type]


@DETERMINISTIC
@given(st.integers(1, M - 1))
def test_schrage_step_equals_modular_multiplication(x: int) -> None:
    assert _seedrand(x) == 48271 * x % M


# ----------------------------------------------------------------------------- outputs


def test_int63_is_uint64_masked() -> None:
    a, b = GoRand(7), GoRand(7)
    for _ in range(1000):
        assert a.int63() == b.uint64() & (2**63 - 1)


def test_outputs_are_in_range() -> None:
    r = GoRand(123)
    for _ in range(2000):
        assert 0 <= r.uint64() < 2**64
        assert 0 <= r.int63() < 2**63
        assert 0.0 <= r.float64() < 1.0


def test_additive_recurrence() -> None:
    # Output k (k >= 607) = output k-607 + output k-273 (mod 2^64): Go's lagged Fibonacci.
    r = GoRand(99)
    out = [r.uint64() for _ in range(1300)]
    for k in range(607, 1300):
        assert out[k] == (out[k - 607] + out[k - 273]) % 2**64


class _ScriptedRand(GoRand):
    """A GoRand whose Int63 values are scripted, to exercise Float64's redraw."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(1)
        self._values = values

    def int63(self) -> int:
        return self._values.pop(0)


def test_float64_redraws_when_it_rounds_to_one() -> None:
    # float64(2^63 - 1) rounds to 2^63, so the quotient is exactly 1.0: Go draws again.
    r = _ScriptedRand([2**63 - 1, 2**62])
    assert r.float64() == 0.5


def test_float64_is_int63_over_2_pow_63() -> None:
    assert _ScriptedRand([0]).float64() == 0.0
    assert _ScriptedRand([2**53]).float64() == 2.0**-10
    a, b = GoRand(5), GoRand(5)
    for _ in range(100):
        assert a.float64() == float(b.int63()) / 2.0**63


# ----------------------------------------------------------------------------- varint


def zigzag_leb128(value: int) -> bytes:
    ux = (value << 1) ^ (value >> 63)
    ux &= 2**64 - 1
    out = bytearray()
    while ux >= 0x80:
        out.append(ux & 0x7F | 0x80)
        ux >>= 7
    out.append(ux)
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00", (0, 1)),
        (b"\x01", (-1, 1)),
        (b"\x02", (1, 1)),
        (b"\x2c", (22, 1)),
        (b"\x7f", (-64, 1)),
        (b"\x80\x01", (64, 2)),
        (b"\xed\xf1\x33", (-425079, 3)),
        (b"\xed\xf1\x33\xff\xff", (-425079, 3)),  # bytes after the terminator are ignored
        (b"\xfe" + b"\xff" * 8 + b"\x01", (2**63 - 1, 10)),  # max int64
        (b"\xff" * 9 + b"\x01", (-(2**63), 10)),  # min int64 (uvarint 2^64 - 1)
    ],
)
def test_go_varint(data: bytes, expected: tuple[int, int]) -> None:
    assert go_varint_n(data) == expected
    assert go_varint(data) == expected[0]


@pytest.mark.parametrize(
    ("data", "n"),
    [
        (b"\xff" * 9 + b"\x02", -10),  # 10th byte > 1: overflow
        (b"\xff" * 10 + b"\x00", -11),  # more than 10 bytes
        (b"\x80" * 32, -11),  # a SHA-256 digest of continuation bytes
        (b"", 0),  # empty buffer
        (b"\x80\x80", 0),  # truncated
    ],
)
def test_go_varint_errors_give_zero(data: bytes, n: int) -> None:
    assert go_uvarint(data) == (0, n)
    assert go_varint_n(data) == (0, n)
    assert go_varint(data) == 0


def test_go_uvarint_values() -> None:
    assert go_uvarint(b"\xac\x02") == (300, 2)
    assert go_uvarint(b"\xff" * 9 + b"\x01") == (2**64 - 1, 10)


def test_go_varint_accepts_bytearray_and_memoryview() -> None:
    assert go_varint(bytearray(b"\x2c")) == 22  # type: ignore[arg-type]
    assert go_varint(memoryview(b"\x2c")) == 22  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["\x2c", 44, None])
def test_go_varint_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        go_varint(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        seed_from_parts(bad)  # type: ignore[arg-type]


@DETERMINISTIC
@given(st.integers(-(2**63), 2**63 - 1), st.binary(max_size=8))
def test_go_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = zigzag_leb128(value)
    assert go_varint_n(encoded + tail) == (value, len(encoded))


def test_first_draw_shortcut_equals_the_full_generator() -> None:
    """``first_uint64`` jumps the seeding LCG with modular powers instead of building the
    607-word state: it must equal the generator's first draw for any int64 seed."""
    rng = random.Random(20261201)
    seeds = [0, 1, -1, 2**31 - 1, 2**31, -(2**63), 2**63 - 1]
    seeds += [rng.randint(-(2**63), 2**63 - 1) for _ in range(2000)]
    for seed in seeds:
        assert first_uint64(seed) == GoRand(seed).uint64(), seed
    for part in (b"", b"hello", bytes(32), bytes(range(32))):
        assert seeded_float64(part) == GoRand(seed_from_parts(part)).float64()
        assert seeded_int63(part) == GoRand(seed_from_parts(part)).int63()
