"""Supplier ownership leases (HA) and the fence that guards every write of an owner.

A :class:`Fence` is the pair (lease key, token). Scripts that write on behalf of a supplier
(accounting, SMST commit, seal) take it and refuse to write unless the key still holds the
token, so a replica that lost its lease cannot write, even if it has not noticed yet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fence:
    """A supplier lease: writes happen only while ``key`` still holds ``token``."""

    key: str
    token: str
