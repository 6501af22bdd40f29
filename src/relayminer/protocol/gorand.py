"""Go ``math/rand`` (v1) reproduced bit-exactly, plus Go ``binary.Varint`` and poktroll's seeding.

poktroll decides by lottery whether a claim needs a proof (spec lifecycle.md §2.3): it hashes
some bytes with SHA-256, reads a Go varint from the digest and draws the first ``Float64`` of
``rand.New(rand.NewSource(seed))``. Python's :mod:`random` is a different generator, so this
module ports Go's ``rngSource`` (Mitchell/Reeds additive lagged Fibonacci generator, 607 words,
tap 273, seeded by a Lehmer LCG XOR Go's ``rngCooked`` table) exactly.

>>> r = GoRand(1)
>>> r.int63(), r.int63()
(5577006791947779410, 8674665223082153551)
>>> go_varint(bytes([0x2C]))
22
>>> seeded_float64(b"hello")
0.2532937422296407
"""

from __future__ import annotations

import hashlib
from typing import Final

from relayminer.protocol._rng_cooked import RNG_COOKED, RNG_LEN
from relayminer.validate import as_bytes, check_int64

__all__ = [
    "GoRand",
    "go_uvarint",
    "go_varint",
    "go_varint_n",
    "seed_from_parts",
    "seeded_float64",
    "seeded_int63",
]

RNG_TAP: Final = 273
"""Go ``rngTap``: the second lag of the generator."""

_INT32_MAX: Final = (1 << 31) - 1  # the LCG modulus M, a Mersenne prime
_LCG_A: Final = 48271
_LCG_Q: Final = 44488  # M div A (Schrage's method)
_LCG_R: Final = 3399  # M mod A
_ZERO_SEED_REPLACEMENT: Final = 89482311
_MASK63: Final = (1 << 63) - 1
_MASK64: Final = (1 << 64) - 1
_TWO_POW_63: Final = float(1 << 63)
_MAX_VARINT_LEN64: Final = 10

# rngCooked as unsigned 64-bit words, so that seeding is plain XOR/AND on Python ints.
_COOKED_U64: Final[tuple[int, ...]] = tuple(v & _MASK64 for v in RNG_COOKED)


def _seedrand(x: int) -> int:
    """One step of Go's seeding LCG ``x' = 48271*x mod (2^31 - 1)``, literally as Go writes it.

    Go uses Schrage's method to stay inside int32; for ``0 < x < 2^31 - 1`` this equals
    ``48271 * x % (2^31 - 1)``, which the seeding loop uses directly.

    >>> _seedrand(1), 48271 * 1 % (2**31 - 1)
    (48271, 48271)
    """
    hi, lo = divmod(x, _LCG_Q)  # x > 0 here, so floor division equals Go's truncation
    x = _LCG_A * lo - _LCG_R * hi
    if x < 0:
        x += _INT32_MAX
    return x


class GoRand:
    """Go ``rand.New(rand.NewSource(seed))`` for the methods poktroll uses.

    ``seed`` is an ``int64`` like Go's; it is reduced modulo ``2^31 - 1`` (so seeds that differ
    by a multiple of it give the same stream) and ``0`` is replaced by ``89482311`` as in Go.

    >>> GoRand(1).uint64()
    5577006791947779410
    >>> GoRand(22).float64()
    0.2532937422296407
    >>> GoRand(0).int63() == GoRand(89482311).int63() == GoRand(2**31 - 1).int63()
    True
    """

    __slots__ = ("_feed", "_tap", "_vec")

    def __init__(self, seed: int) -> None:
        self._vec: list[int] = []
        self._tap = 0
        self._feed = 0
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Reset the generator to the state of Go's ``rngSource.Seed(seed)``."""
        seed = check_int64("seed", seed)
        # Go: seed % M keeps the dividend's sign, then adds M if negative: Python's % already
        # returns the non-negative representative.
        x = seed % _INT32_MAX
        if x == 0:
            x = _ZERO_SEED_REPLACEMENT
        a, m = _LCG_A, _INT32_MAX
        for _ in range(20):  # Go's warm-up iterations i = -20 .. -1
            x = a * x % m
        vec: list[int] = []
        append = vec.append
        for cooked in _COOKED_U64:
            x = a * x % m
            u = x << 40
            x = a * x % m
            u ^= x << 20
            x = a * x % m
            # Go computes in wrapping int64; keep the low 64 bits as an unsigned word.
            append((u ^ x ^ cooked) & _MASK64)
        self._vec = vec
        self._tap = 0
        self._feed = RNG_LEN - RNG_TAP

    def uint64(self) -> int:
        """Next value of Go's ``rngSource.Uint64()`` (0 ≤ value < 2^64)."""
        tap = self._tap - 1
        if tap < 0:
            tap += RNG_LEN
        feed = self._feed - 1
        if feed < 0:
            feed += RNG_LEN
        vec = self._vec
        value = (vec[feed] + vec[tap]) & _MASK64
        vec[feed] = value
        self._tap = tap
        self._feed = feed
        return value

    def int63(self) -> int:
        """Next value of Go's ``Int63()`` (0 ≤ value < 2^63)."""
        return self.uint64() & _MASK63

    def float64(self) -> float:
        """Next value of Go's ``Rand.Float64()``: ``Int63() / 2^63``, redrawn if it rounds to 1.

        ``float(int)`` rounds half to even like Go's ``float64(int64)`` conversion, and the
        division by a power of two is exact, so the result is bit-identical to Go's.
        """
        while True:
            f = float(self.int63()) / _TWO_POW_63
            if f != 1.0:
                return f


def go_uvarint(data: bytes) -> tuple[int, int]:
    """Go ``binary.Uvarint``: ``(value, n)`` with Go's error convention for ``n``.

    ``n > 0``: bytes read; ``n == 0``: buffer ended before the last byte (value 0);
    ``n < 0``: overflow after ``-n`` bytes (value 0) — more than 10 bytes, or a 10th byte > 1.

    >>> go_uvarint(bytes([0xAC, 0x02]))
    (300, 2)
    >>> go_uvarint(b"\\x80")
    (0, 0)
    >>> go_uvarint(b"\\xff" * 9 + b"\\x02")
    (0, -10)
    """
    buf = as_bytes("data", data)
    x = 0
    shift = 0
    for i, b in enumerate(buf):
        if i == _MAX_VARINT_LEN64:
            return 0, -(i + 1)
        if b < 0x80:
            if i == _MAX_VARINT_LEN64 - 1 and b > 1:
                return 0, -(i + 1)
            return x | (b << shift), i + 1
        x |= (b & 0x7F) << shift
        shift += 7
    return 0, 0


def go_varint_n(data: bytes) -> tuple[int, int]:
    """Go ``binary.Varint``: zig-zag decoded :func:`go_uvarint`, returning ``(value, n)``.

    >>> go_varint_n(bytes([0x03]))
    (-2, 1)
    """
    ux, n = go_uvarint(data)
    x = ux >> 1
    if ux & 1:
        x = ~x
    return x, n


def go_varint(data: bytes) -> int:
    """Value of Go ``binary.Varint(data)`` (0 on overflow or a truncated buffer).

    >>> go_varint(bytes([0x2C])), go_varint(bytes([0x2B])), go_varint(b"\\xed\\xf1\\x33")
    (22, -22, -425079)
    """
    return go_varint_n(data)[0]


def seed_from_parts(*seed_parts: bytes) -> int:
    """poktroll's seed: ``binary.Varint(SHA-256(concatenated seed parts))``.

    >>> seed_from_parts(b"hel", b"lo")
    22
    """
    joined = b"".join(as_bytes("seed_parts", part) for part in seed_parts)
    return go_varint(hashlib.sha256(joined).digest())


def _vec_word(x0: int, i: int) -> int:
    """Word ``i`` of the state ``seed`` builds from the LCG start ``x0``, without the others.

    The seeding LCG is purely multiplicative, so its ``k``-th value is ``a^k x0 mod m``; word
    ``i`` is built from values ``20 + 3i + 1 .. + 3`` (after the 20 warm-up steps).
    """
    a, m = _LCG_A, _INT32_MAX
    x1 = pow(a, 20 + 3 * i + 1, m) * x0 % m
    x2 = a * x1 % m
    x3 = a * x2 % m
    return ((x1 << 40) ^ (x2 << 20) ^ x3 ^ _COOKED_U64[i]) & _MASK64


def first_uint64(seed: int) -> int:
    """The first ``Uint64()`` of ``GoRand(seed)`` in O(log) time: poktroll draws one number per
    claim (the proof lottery), and building the 607-word state for it costs the lifecycle
    ~1 ms a claim. The first draw reads words ``feed - 1`` and ``tap - 1`` (mod 607) only.

    >>> all(first_uint64(s) == GoRand(s).uint64() for s in (0, 1, 22, -5, 2**62, 2**31 - 1))
    True
    """
    x0 = check_int64("seed", seed) % _INT32_MAX or _ZERO_SEED_REPLACEMENT
    feed, tap = RNG_LEN - RNG_TAP - 1, RNG_LEN - 1
    return (_vec_word(x0, feed) + _vec_word(x0, tap)) & _MASK64


def seeded_float64(*seed_parts: bytes) -> float:
    """poktroll ``SeededFloat64``: first ``Float64()`` of Go's generator seeded by the parts.

    >>> seeded_float64(b"hello")
    0.2532937422296407
    """
    seed = seed_from_parts(*seed_parts)
    f = float(first_uint64(seed) & _MASK63) / _TWO_POW_63
    if f != 1.0:
        return f
    return GoRand(seed).float64()  # the first draw rounded to 1: Go draws again


def seeded_int63(*seed_parts: bytes) -> int:
    """poktroll ``SeededInt63``: first ``Int63()`` of Go's generator seeded by the parts.

    >>> seeded_int63(b"hello") == GoRand(22).int63()
    True
    """
    return first_uint64(seed_from_parts(*seed_parts)) & _MASK63
