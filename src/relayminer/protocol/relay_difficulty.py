"""Relay mining difficulty (spec lifecycle.md §6.2): target hashes, multiplier and EMA update.

A relay is *volume applicable* (it enters the SMST) iff ``SHA-256(relay bytes) < target``.
The base target ``0xff * 32`` accepts every relay (multiplier 1). A harder target accepts a
fraction ``target / max`` of the relays, so the chain scales claimed compute units up by the
multiplier ``max / target`` (an exact rational).

>>> difficulty_multiplier(BASE_RELAY_DIFFICULTY_TARGET_HASH)
Fraction(1, 1)
>>> difficulty_multiplier(bytes([0x3F]) + b"\\xff" * 31) == Fraction(2**256 - 1, 2**254 - 1)
True
>>> is_relay_volume_applicable(b"\\x00" * 32, BASE_RELAY_DIFFICULTY_TARGET_HASH)
True
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

from relayminer.errors import InvalidProtocolArgumentError
from relayminer.validate import UINT64_MAX, as_bytes, check_uint64

__all__ = [
    "BASE_RELAY_DIFFICULTY_TARGET_HASH",
    "DEFAULT_TARGET_NUM_RELAYS",
    "difficulty_multiplier",
    "is_relay_volume_applicable",
    "next_difficulty_target_hash",
    "next_relays_ema",
]

BASE_RELAY_DIFFICULTY_TARGET_HASH: Final = b"\xff" * 32
"""The easiest target: every relay is volume applicable (multiplier 1)."""

DEFAULT_TARGET_NUM_RELAYS: Final = 100_000
"""poktroll's default service ``target_num_relays`` (mainnet value too)."""

_BASE_TARGET_INT: Final = int.from_bytes(BASE_RELAY_DIFFICULTY_TARGET_HASH, "big")
_EMA_ALPHA: Final = Fraction(0.1)  # Go big.Float.SetFloat64(0.1): the double nearest 0.1
_BIG_FLOAT_PREC: Final = 64  # precision Go gives big.Float results built from uint64 values


def is_relay_volume_applicable(relay_hash: bytes, target_hash: bytes) -> bool:
    """True iff ``relay_hash < target_hash`` (byte-wise, like Go ``bytes.Compare``).

    >>> is_relay_volume_applicable(b"\\x80" + b"\\x00" * 31, b"\\x7f" + b"\\xff" * 31)
    False
    """
    return as_bytes("relay_hash", relay_hash) < as_bytes("target_hash", target_hash)


def difficulty_multiplier(target_hash: bytes) -> Fraction:
    """``max_hash / target`` as an exact fraction (poktroll ``GetRelayDifficultyMultiplier``).

    ``max_hash`` is the 32-byte base target; ``target_hash`` is read as a big-endian integer.
    A target of zero (no relay could ever be mined) is rejected.

    >>> difficulty_multiplier(b"\\x7f" + b"\\xff" * 31) > 2
    True
    """
    target = int.from_bytes(as_bytes("target_hash", target_hash), "big")
    if target == 0:
        raise InvalidProtocolArgumentError("target_hash", "must be > 0 (an all-zero target)")
    return Fraction(_BASE_TARGET_INT, target)


def _round_to_precision(x: Fraction, prec: int) -> Fraction:
    """Round a non-negative ``x`` to ``prec`` significant bits, half to even (Go big.Float)."""
    if x == 0:
        return x
    # Find e with 2^(prec-1) <= x / 2^e < 2^prec.
    e = x.numerator.bit_length() - x.denominator.bit_length() - prec
    while x / Fraction(2) ** e >= 1 << prec:
        e += 1
    while x / Fraction(2) ** e < 1 << (prec - 1):
        e -= 1
    mantissa = round(x / Fraction(2) ** e)  # Fraction.__round__ rounds half to even
    return mantissa * Fraction(2) ** e


def next_relays_ema(prev_relays_ema: int, num_relays: int) -> int:
    """New EMA of a service's settled relays: ``0.1 * num_relays + 0.9 * prev`` (§6.2).

    Reproduces poktroll's ``computeEma``: Go ``big.Float`` arithmetic with alpha = the double
    ``0.1``, every intermediate rounded to 64 significant bits (nearest even), then truncated
    to ``uint64``. For a service without a stored difficulty the chain uses
    ``prev_relays_ema = num_relays``.

    >>> next_relays_ema(100_000, 200_000), next_relays_ema(0, 5), next_relays_ema(7, 7)
    (110000, 0, 7)
    """
    prev = check_uint64("prev_relays_ema", prev_relays_ema)
    current = check_uint64("num_relays", num_relays)
    one_minus_alpha = _round_to_precision(1 - _EMA_ALPHA, _BIG_FLOAT_PREC)
    weighted_current = _round_to_precision(_EMA_ALPHA * current, _BIG_FLOAT_PREC)
    weighted_prev = _round_to_precision(one_minus_alpha * prev, _BIG_FLOAT_PREC)
    total = _round_to_precision(weighted_current + weighted_prev, _BIG_FLOAT_PREC)
    return min(int(total), UINT64_MAX)  # big.Float.Uint64 truncates toward zero


def next_difficulty_target_hash(
    prev_target_hash: bytes, target_num_relays: int, new_relays_ema: int
) -> bytes:
    """Scale the previous target by ``target_num_relays / new_relays_ema`` (exact rational).

    Unchanged if the two are equal. The product is floored, trimmed of leading zero bytes,
    capped at the 32-byte base target (when longer than 32 bytes) and left-padded with zeros
    to the previous target's length (poktroll ``ComputeNewDifficultyTargetHash``).

    >>> next_difficulty_target_hash(b"\\xff" * 32, 100_000, 200_000).hex()[:4]
    '7fff'
    >>> next_difficulty_target_hash(b"\\x7f" + b"\\xff" * 31, 100_000, 50_000).hex()[-4:]
    'fffe'
    >>> next_difficulty_target_hash(b"\\xff" * 32, 100_000, 10) == b"\\xff" * 32
    True
    """
    prev = as_bytes("prev_target_hash", prev_target_hash)
    target_relays = check_uint64("target_num_relays", target_num_relays)
    ema = check_uint64("new_relays_ema", new_relays_ema)
    if target_relays == ema:
        return prev
    if ema == 0:
        raise InvalidProtocolArgumentError("new_relays_ema", "must be > 0 to scale the target")
    scaled = int.from_bytes(prev, "big") * target_relays // ema
    scaled_bytes = scaled.to_bytes((scaled.bit_length() + 7) // 8, "big")
    if len(scaled_bytes) > len(BASE_RELAY_DIFFICULTY_TARGET_HASH):
        return BASE_RELAY_DIFFICULTY_TARGET_HASH
    if len(scaled_bytes) < len(prev):
        return scaled_bytes.rjust(len(prev), b"\x00")
    return scaled_bytes
