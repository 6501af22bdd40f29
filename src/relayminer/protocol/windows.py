"""Shared params and the session / claim / proof window maths of poktroll v0.1.35 (``x/shared``).

Spec: lifecycle.md §1. A session covers ``N`` blocks on a grid anchored at height ``A`` (the
first block of the current params epoch, session number ``K``). For a height ``h`` with
``E = session_end_height(p, h)`` and ``T = CO + CC + PO + PC``::

    start = A + ((h - A) div N)*N        end = start + N - 1       number = K + (h - A) div N
    grace_end = E + G                    claim_open = E + CO + 1   claim_close = claim_open + CC
    proof_open = claim_close + PO        proof_close = proof_open + PC = E + T + 1 = settlement

Which params to pass: the params effective at the session END for the grid, windows and the
proof seed height; the params at session START for pricing (spec §3.0b). Every height function
returns 0 for ``h <= 0`` (no session exists there). If the anchor is unset (``A <= 0``) or lies
after ``h``, the genesis grid ``A = 1, K = 1`` is used (spec §1.2).

Example (a) of spec §1.5, code defaults:

>>> p = SharedParams()
>>> session_start_height(p, 25), session_end_height(p, 25), session_number(p, 25)
(21, 30, 3)
>>> claim_window_open_height(p, 25), claim_window_close_height(p, 25)
(32, 36)
>>> proof_window_open_height(p, 25), proof_window_close_height(p, 25), settlement_height(p, 25)
(36, 40, 40)
>>> proof_seed_height(p, 25), pending_sessions(p)
(35, 1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from relayminer.errors import InvalidProtocolArgumentError
from relayminer.protocol.gorand import seeded_int63

__all__ = [
    "SharedParams",
    "claim_window_close_height",
    "claim_window_open_height",
    "earliest_claim_commit_height",
    "earliest_proof_commit_height",
    "grace_period_end_height",
    "pending_sessions",
    "proof_seed_height",
    "proof_window_close_height",
    "proof_window_open_height",
    "session_end_height",
    "session_end_to_proof_close_blocks",
    "session_number",
    "session_start_height",
    "settlement_height",
]

_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class SharedParams:
    """poktroll ``x/shared`` params (plus the derived session-grid anchor), validated.

    Defaults are poktroll's code defaults. Validation follows the chain's governance rules
    (spec §1.1): ``N >= 1``, ``G < N``, ``CO >= G``, every offset ``>= 0``, at least one pending
    session (``CO + CC + PO + PC > 0``), ``CUTTM > 0``, ``GRAN > 0``. An invalid value raises
    :class:`~relayminer.errors.InvalidProtocolArgumentError` naming the field; a
    non-``int`` value raises :class:`TypeError`.

    ``session_grid_anchor_height <= 0`` means "no anchor recorded" (genesis grid A=1, K=1 is
    used); with a real anchor, ``session_number_at_anchor`` must be ``>= 1``.

    >>> SharedParams(num_blocks_per_session=20).num_blocks_per_session
    20
    >>> SharedParams(num_blocks_per_session=0)
    Traceback (most recent call last):
    ...
    relayminer.errors.InvalidProtocolArgumentError: invalid num_blocks_per_session: \
must be >= 1, got 0
    """

    num_blocks_per_session: int = 10
    grace_period_end_offset_blocks: int = 1
    claim_window_open_offset_blocks: int = 1
    claim_window_close_offset_blocks: int = 4
    proof_window_open_offset_blocks: int = 0
    proof_window_close_offset_blocks: int = 4
    compute_units_to_tokens_multiplier: int = 42_000_000
    compute_unit_cost_granularity: int = 1_000_000
    session_grid_anchor_height: int = 1
    session_number_at_anchor: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{f.name} must be an int, got {type(value).__name__}")
        self._check_range()
        self._check_relations()

    def _check_range(self) -> None:
        uint64_fields = ("compute_units_to_tokens_multiplier", "compute_unit_cost_granularity")
        signed_fields = ("session_grid_anchor_height", "session_number_at_anchor")
        for f in dataclasses.fields(self):
            value: int = getattr(self, f.name)
            if f.name in uint64_fields:
                low, high = 1, _UINT64_MAX
            elif f.name in signed_fields:
                low, high = -_INT64_MAX - 1, _INT64_MAX
            elif f.name == "num_blocks_per_session":
                low, high = 1, _INT64_MAX
            else:
                low, high = 0, _INT64_MAX
            if value < low:
                raise InvalidProtocolArgumentError(f.name, f"must be >= {low}, got {value}")
            if value > high:
                raise InvalidProtocolArgumentError(f.name, f"must be <= {high}, got {value}")

    def _check_relations(self) -> None:
        n = self.num_blocks_per_session
        g = self.grace_period_end_offset_blocks
        co = self.claim_window_open_offset_blocks
        if g >= n:
            raise InvalidProtocolArgumentError(
                "grace_period_end_offset_blocks",
                f"must be < num_blocks_per_session ({n}), got {g}",
            )
        if co < g:
            raise InvalidProtocolArgumentError(
                "claim_window_open_offset_blocks",
                f"must be >= grace_period_end_offset_blocks ({g}), got {co}",
            )
        if session_end_to_proof_close_blocks(self) == 0:
            raise InvalidProtocolArgumentError(
                "claim_window_open_offset_blocks",
                "claim/proof window offsets (claim_window_open_offset_blocks + "
                "claim_window_close_offset_blocks + proof_window_open_offset_blocks + "
                "proof_window_close_offset_blocks) must sum to > 0 so that there is at least "
                "one pending session",
            )
        if self.session_grid_anchor_height >= 1 and self.session_number_at_anchor < 1:
            raise InvalidProtocolArgumentError(
                "session_number_at_anchor",
                f"must be >= 1 when session_grid_anchor_height is set, "
                f"got {self.session_number_at_anchor}",
            )


def _check_height(h: object) -> int:
    if isinstance(h, bool) or not isinstance(h, int):
        raise TypeError(f"h must be an int, got {type(h).__name__}")
    return h


def _anchor(p: SharedParams, h: int) -> tuple[int, int]:
    """``(A, K)`` for query height ``h``, with the spec's fallback to the genesis grid."""
    a = p.session_grid_anchor_height
    if a <= 0 or a > h:
        return 1, 1
    return a, p.session_number_at_anchor


def session_start_height(p: SharedParams, h: int) -> int:
    """First block of the session containing ``h``: ``A + ((h - A) div N)*N`` (0 if ``h <= 0``).

    >>> session_start_height(SharedParams(), 10), session_start_height(SharedParams(), 11)
    (1, 11)
    """
    if _check_height(h) <= 0:
        return 0
    a, _ = _anchor(p, h)
    n = p.num_blocks_per_session
    return a + (h - a) // n * n


def session_end_height(p: SharedParams, h: int) -> int:
    """Last block of the session containing ``h``: ``start + N - 1`` (0 if ``h <= 0``).

    >>> session_end_height(SharedParams(), 1)
    10
    """
    if _check_height(h) <= 0:
        return 0
    return session_start_height(p, h) + p.num_blocks_per_session - 1


def session_number(p: SharedParams, h: int) -> int:
    """Session number of ``h``: ``K + (h - A) div N`` (0 if ``h <= 0``).

    >>> session_number(SharedParams(), 1), session_number(SharedParams(), 11)
    (1, 2)
    """
    if _check_height(h) <= 0:
        return 0
    a, k = _anchor(p, h)
    return k + (h - a) // p.num_blocks_per_session


def grace_period_end_height(p: SharedParams, h: int) -> int:
    """Last height at which relays of ``h``'s session are still payable: ``E + G``.

    >>> grace_period_end_height(SharedParams(), 25)
    31
    """
    if _check_height(h) <= 0:
        return 0
    return session_end_height(p, h) + p.grace_period_end_offset_blocks


def claim_window_open_height(p: SharedParams, h: int) -> int:
    """First height of the claim window: ``E + CO + 1`` (+1 lets last-block relays in).

    >>> claim_window_open_height(SharedParams(), 25)
    32
    """
    if _check_height(h) <= 0:
        return 0
    return session_end_height(p, h) + p.claim_window_open_offset_blocks + 1


def claim_window_close_height(p: SharedParams, h: int) -> int:
    """Last height (inclusive) of the claim window: ``claim_open + CC``.

    >>> claim_window_close_height(SharedParams(), 25)
    36
    """
    if _check_height(h) <= 0:
        return 0
    return claim_window_open_height(p, h) + p.claim_window_close_offset_blocks


def proof_window_open_height(p: SharedParams, h: int) -> int:
    """First height of the proof window: ``claim_close + PO``.

    >>> proof_window_open_height(SharedParams(), 25)
    36
    """
    if _check_height(h) <= 0:
        return 0
    return claim_window_close_height(p, h) + p.proof_window_open_offset_blocks


def proof_window_close_height(p: SharedParams, h: int) -> int:
    """Last height (inclusive) of the proof window: ``proof_open + PC``.

    >>> proof_window_close_height(SharedParams(), 25)
    40
    """
    if _check_height(h) <= 0:
        return 0
    return proof_window_open_height(p, h) + p.proof_window_close_offset_blocks


def settlement_height(p: SharedParams, h: int) -> int:
    """Block whose tokenomics EndBlocker settles the session's claim: ``E + T + 1``.

    That is the proof window close height (settlement runs after the proof EndBlocker).

    >>> settlement_height(SharedParams(), 25)
    40
    """
    if _check_height(h) <= 0:
        return 0
    return session_end_height(p, h) + session_end_to_proof_close_blocks(p) + 1


def session_end_to_proof_close_blocks(p: SharedParams) -> int:
    """``T = CO + CC + PO + PC``: blocks from a session's end to its proof window close - 1.

    >>> session_end_to_proof_close_blocks(SharedParams())
    9
    """
    return (
        p.claim_window_open_offset_blocks
        + p.claim_window_close_offset_blocks
        + p.proof_window_open_offset_blocks
        + p.proof_window_close_offset_blocks
    )


def pending_sessions(p: SharedParams) -> int:
    """Number of sessions whose claim/proof windows can overlap: ``ceil(T / N)``.

    >>> pending_sessions(SharedParams()), pending_sessions(SharedParams(num_blocks_per_session=5))
    (1, 2)
    """
    return -(-session_end_to_proof_close_blocks(p) // p.num_blocks_per_session)


def _spread_offset(window_open_block_hash: bytes | None, supplier: str, window: int) -> int:
    if window_open_block_hash is not None and not isinstance(
        window_open_block_hash, bytes | bytearray
    ):
        raise TypeError(
            "window_open_block_hash must be bytes or None, "
            f"got {type(window_open_block_hash).__name__}"
        )
    if not isinstance(supplier, str):
        raise TypeError(f"supplier_operator_address must be a str, got {type(supplier).__name__}")
    if window <= 0:
        return 0  # a one-block window leaves nothing to spread over (Go would divide by 0)
    block_hash = bytes(window_open_block_hash or b"")
    return seeded_int63(block_hash, supplier.encode("utf-8")) % window


def earliest_claim_commit_height(
    p: SharedParams,
    h: int,
    supplier_operator_address: str = "",
    window_open_block_hash: bytes | None = None,
    *,
    distribute: bool = False,
) -> int:
    """Earliest height at which the supplier's claim for ``h``'s session is accepted.

    poktroll v0.1.35 disables the per-supplier spread: this is the claim window open height
    for everyone (``distribute=False``, the default; the other arguments are then ignored).
    With ``distribute=True`` the historical algorithm (spec §1.4) is applied:
    ``claim_open + SeededInt63(hash of block claim_open, utf8(supplier)) mod CC``.

    >>> earliest_claim_commit_height(SharedParams(), 25, "pokt1supplier")
    32
    """
    open_height = claim_window_open_height(p, h)
    if not distribute or open_height == 0:
        return open_height
    return open_height + _spread_offset(
        window_open_block_hash, supplier_operator_address, p.claim_window_close_offset_blocks
    )


def earliest_proof_commit_height(
    p: SharedParams,
    h: int,
    supplier_operator_address: str = "",
    window_open_block_hash: bytes | None = None,
    *,
    distribute: bool = False,
) -> int:
    """Earliest height at which the supplier's proof for ``h``'s session is accepted.

    Same rules as :func:`earliest_claim_commit_height`, on the proof window (offset mod PC).

    >>> earliest_proof_commit_height(SharedParams(), 25)
    36
    """
    open_height = proof_window_open_height(p, h)
    if not distribute or open_height == 0:
        return open_height
    return open_height + _spread_offset(
        window_open_block_hash, supplier_operator_address, p.proof_window_close_offset_blocks
    )


def proof_seed_height(
    p: SharedParams,
    h: int,
    supplier_operator_address: str = "",
    window_open_block_hash: bytes | None = None,
    *,
    distribute: bool = False,
) -> int:
    """Height of the block whose hash seeds the proof requirement and the proof path.

    ``earliest_proof_commit_height - 1``; with the spread disabled (v0.1.35) that is
    ``proof_open - 1``. Returns 0 for ``h <= 0``.

    >>> proof_seed_height(SharedParams(), 25)
    35
    """
    earliest = earliest_proof_commit_height(
        p, h, supplier_operator_address, window_open_block_hash, distribute=distribute
    )
    return earliest - 1 if earliest > 0 else 0
