"""Rejections: one classification of a node's (codespace, code, log) answer, and a simulated
chain that answers with what a real node returns (registered codes from ValidateBasic, code 1 /
``undefined`` with poktroll's text from the message handlers)."""

from __future__ import annotations

import pytest

from relayminer.chain.base import SessionHeader, TxResult
from relayminer.chain.rejections import Rejection, classify
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.state import encode_tx, tx_hash
from tests.simchain.conftest import ChainFactory
from tests.simchain.support import (
    APP,
    CLAIM_CLOSE,
    CLAIM_OPEN,
    CUPR,
    NEVER,
    PROOF_CLOSE,
    SEED_HEIGHT,
    SUP1,
    SUP2,
    SVC,
    advance_to,
    build_tree,
    claim,
    fake_root,
    make_config,
    proof,
)
from tests.simchain.test_proofs import claimed_session

# The handler-failure texts a node reports (code 1, codespace "undefined"), as composed from
# poktroll's msg servers and cosmossdk.io/errors.
_PREFIX = "failed to execute message; message index: 0: rpc error: code = "


@pytest.mark.parametrize(
    ("codespace", "code", "log", "expected"),
    [
        ("", 0, "", Rejection.NONE),
        ("sdk", 19, "tx already exists in cache", Rejection.ALREADY_IN_MEMPOOL),
        ("sdk", 20, "mempool is full", Rejection.RETRYABLE),
        ("sdk", 13, "insufficient fees; got: 1upokt required: 2upokt", Rejection.INSUFFICIENT_FEE),
        ("sdk", 11, "out of gas in location: WriteFlat", Rejection.RETRYABLE),
        ("sdk", 18, "already used timeout", Rejection.RETRYABLE),
        ("sdk", 42, "tx timeout", Rejection.RETRYABLE),
        ("sdk", 32, "account sequence mismatch, expected 4, got 3", Rejection.WRONG_SEQUENCE),
        ("sdk", 5, "insufficient funds", Rejection.INSUFFICIENT_FUNDS),
        (
            "sdk",
            4,
            "signature verification failed; please verify account number (7) and chain-id (pocket)",
            Rejection.CONFIGURATION,
        ),
        ("sdk", 28, "invalid chain-id", Rejection.CONFIGURATION),
        ("sdk", 9, "account does not exist", Rejection.CONFIGURATION),
        ("sdk", 21, "tx too large", Rejection.TX_TOO_LARGE),
        ("sdk", 99, "something new", Rejection.UNKNOWN),
        (
            "proof",
            1121,
            "claim attempted outside of the session's claim window",
            Rejection.WINDOW_CLOSED,
        ),
        (
            "proof",
            1122,
            "proof attempted outside of the session's proof window",
            Rejection.WINDOW_CLOSED,
        ),
        ("proof", 1106, "claim not found", Rejection.CLAIM_MISSING),
        ("proof", 1129, "proof not required", Rejection.PROOF_NOT_REQUIRED),
        ("proof", 1127, "not enough funds to submit proof", Rejection.INSUFFICIENT_FUNDS),
        ("proof", 1104, "invalid root hash", Rejection.INVALID_CONTENT),
        ("proof", 1115, "invalid session header", Rejection.INVALID_CONTENT),
        ("proof", 1126, "claim compute units mismatch", Rejection.INVALID_CONTENT),
        ("proof", 1999, "outside the module's range", Rejection.UNKNOWN),
        (
            "undefined",
            1,
            _PREFIX + "FailedPrecondition desc = claim attempted outside of the "
            "session's claim window: current block height (12) is greater than session claim "
            "window close height (11)",
            Rejection.WINDOW_CLOSED,
        ),
        (
            "undefined",
            1,
            _PREFIX + "FailedPrecondition desc = proof attempted outside of the "
            "session's proof window: current block height (20)",
            Rejection.WINDOW_CLOSED,
        ),
        (
            "undefined",
            1,
            _PREFIX + "FailedPrecondition desc = claim not found",
            Rejection.CLAIM_MISSING,
        ),
        (
            "undefined",
            1,
            _PREFIX + "FailedPrecondition desc = proof not required",
            Rejection.PROOF_NOT_REQUIRED,
        ),
        (
            "undefined",
            1,
            _PREFIX + "InvalidArgument desc = supplier not found",
            Rejection.INVALID_CONTENT,
        ),
        ("undefined", 1, "panic: something nobody registered", Rejection.UNKNOWN),
        ("mymodule", 7, "claim window", Rejection.UNKNOWN),  # text decides only for code 1
    ],
)
def test_classify(codespace: str, code: int, log: str, expected: Rejection) -> None:
    assert classify(codespace, code, log) is expected
    result = TxResult("H", code, log, codespace)
    assert result.reason is expected and result.ok is (code == 0)


def test_final_reasons() -> None:
    final = {r for r in Rejection if r.is_final}
    assert final == {
        Rejection.WINDOW_CLOSED,
        Rejection.CLAIM_MISSING,
        Rejection.PROOF_NOT_REQUIRED,
        Rejection.INVALID_CONTENT,
        Rejection.CONFIGURATION,
    }


async def _header(chain: SimulatedChain) -> SessionHeader:
    return (await chain.get_session(APP, SVC, 1)).header


def _with(header: SessionHeader, **changes: object) -> SessionHeader:
    h = SessionHeader()
    h.CopyFrom(header)
    for name, value in changes.items():
        setattr(h, name, value)
    return h


async def test_validate_basic_failures_carry_proof_codes(chain: SimulatedChain) -> None:
    header = await _header(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    cases = [
        (claim("", header, fake_root(5, 5 * CUPR)), 1101),
        (claim(SUP1, _with(header, session_id=""), fake_root(5, 5 * CUPR)), 1115),
        (claim(SUP1, _with(header, session_start_block_height=0), fake_root(5, 50)), 1115),
        (claim(SUP1, header, b"\x11" * 40), 1104),
        (claim(SUP1, header, fake_root(0, 10)), 1104),
        (proof(SUP1, header, b""), 1108),
    ]
    for msg, code in cases:
        result = await chain.broadcast([msg])
        assert (result.codespace, result.code) == ("proof", code), result
        assert result.reason is Rejection.INVALID_CONTENT


async def test_handler_failures_are_code_1_undefined_with_poktrolls_text(
    chain: SimulatedChain,
) -> None:
    header = await _header(chain)
    await advance_to(chain, CLAIM_CLOSE)  # the tx would land after the window
    late = await chain.broadcast([claim(SUP1, header, fake_root(5, 5 * CUPR))])
    assert (late.codespace, late.code) == ("undefined", 1)
    assert late.log.startswith(
        _PREFIX + "FailedPrecondition desc = claim attempted outside of the session's claim "
        "window: current block height ("
    )
    assert late.reason is Rejection.WINDOW_CLOSED


async def test_a_failing_second_message_names_its_index(chain: SimulatedChain) -> None:
    header = await _header(chain)
    await advance_to(chain, CLAIM_OPEN - 1)
    result = await chain.broadcast(
        [claim(SUP1, header, fake_root(5, 5 * CUPR)), claim(SUP2, header, fake_root(5, 7))]
    )
    assert "message index: 1: rpc error: code = InvalidArgument desc = mismatch: claim " in (
        result.log
    )
    assert result.reason is Rejection.INVALID_CONTENT


async def test_proof_rejections_classify(make_chain: ChainFactory) -> None:
    chain = await make_chain(make_config(proof_params=NEVER))
    header, tree = await claimed_session(chain)
    seed = await chain.block_hash(SEED_HEIGHT)
    not_required = await chain.broadcast([proof(SUP1, header, tree.proof(seed, header.session_id))])
    assert not_required.reason is Rejection.PROOF_NOT_REQUIRED
    assert (not_required.codespace, not_required.code) == ("undefined", 1)
    other = build_tree(header, SUP2, 3)
    missing = await chain.broadcast([proof(SUP2, header, other.proof(seed, header.session_id))])
    assert missing.reason is Rejection.CLAIM_MISSING
    await advance_to(chain, PROOF_CLOSE)
    closed = await chain.broadcast([proof(SUP1, header, tree.proof(seed, header.session_id))])
    assert closed.reason is Rejection.WINDOW_CLOSED


async def test_deliver_tx_failures_are_recorded_with_their_codespace(
    chain: SimulatedChain,
) -> None:
    header = await _header(chain)
    await advance_to(chain, CLAIM_CLOSE)
    raw = encode_tx([claim(SUP1, header, fake_root(5, 5 * CUPR))])
    await chain._redis.rpush(chain.keys.mempool, raw)
    block = await chain.produce_block()
    record = await chain.tx_result(tx_hash(raw))
    assert record is not None and record.height == block.height
    assert (record.codespace, record.code) == ("undefined", 1)
    assert classify(record.codespace, record.code, record.log) is Rejection.WINDOW_CLOSED
