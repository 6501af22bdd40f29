"""Argument checks at the boundary of the pure modules (one place, one wording).

>>> as_bytes("root", bytearray(b"ab"))
b'ab'
>>> check_uint64("sum", -1)
Traceback (most recent call last):
...
relayminer.errors.InvalidProtocolArgumentError: invalid sum: must be a uint64, got -1
"""

from __future__ import annotations

from typing import Final

from relayminer.errors import InvalidProtocolArgumentError

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
UINT64_MAX: Final = (1 << 64) - 1


def as_bytes(name: str, value: object) -> bytes:
    """``value`` as ``bytes`` (bytearray and memoryview are copied); TypeError otherwise."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, got {type(value).__name__}")


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def check_uint64(name: str, value: object) -> int:
    """An int in [0, 2^64 - 1]; InvalidProtocolArgumentError naming ``name`` otherwise."""
    checked = _check_int(name, value)
    if not 0 <= checked <= UINT64_MAX:
        raise InvalidProtocolArgumentError(name, f"must be a uint64, got {value}")
    return checked


def check_int64(name: str, value: object) -> int:
    """An int in [-2^63, 2^63 - 1]; InvalidProtocolArgumentError naming ``name`` otherwise."""
    checked = _check_int(name, value)
    if not INT64_MIN <= checked <= INT64_MAX:
        raise InvalidProtocolArgumentError(name, f"must fit in int64, got {value}")
    return checked
