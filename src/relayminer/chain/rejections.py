"""What a chain's answer to a transaction means for the miner: one classification, in one place.

A node answers a claim or proof transaction with a Cosmos ``(codespace, code)`` pair and a log
text. The lifecycle must not read log texts; it decides on the :class:`Rejection` this module
derives, following the Cosmos SDK and poktroll error registries:

- registered SDK errors, ``codespace == "sdk"`` (cosmos-sdk ``types/errors/errors.go``);
- poktroll's ``proof`` module errors (``x/proof/types/errors.go``), which a node reports with
  their code only from ``ValidateBasic`` (CheckTx);
- message-handler failures, which a real node reports as code 1 in codespace ``undefined``
  with the module's error text inside ("failed to execute message; message index: 0: rpc
  error: code = FailedPrecondition desc = claim attempted outside of the session's claim
  window: ..."), because cosmossdk.io/errors only recognises registered errors. Only for those
  is the text matched, here, on the module's own wording.

See ``docs/chain.md`` for the table and the retry policy that follows from it.

>>> classify("sdk", 19, "tx already exists in cache")
<Rejection.ALREADY_IN_MEMPOOL: 'already_in_mempool'>
>>> classify("undefined", 1, "failed to execute message; message index: 0: rpc error: "
...          "code = FailedPrecondition desc = proof not required")
<Rejection.PROOF_NOT_REQUIRED: 'proof_not_required'>
>>> classify("", 0, "")
<Rejection.NONE: 'none'>
"""

from __future__ import annotations

import enum

__all__ = ["Rejection", "TxPhase", "classify"]


class TxPhase(enum.StrEnum):
    """Which kind of message a transaction carries."""

    CLAIM = "claim"
    PROOF = "proof"


class Rejection(enum.StrEnum):
    """Why a chain did not accept (or did not execute) a claim or proof transaction."""

    #: accepted (code 0)
    NONE = "none"
    #: the same bytes are already in the mempool (sdk 19): wait for inclusion, do not count it
    ALREADY_IN_MEMPOOL = "already_in_mempool"
    #: a passing condition (mempool full, timeouts, unordered nonce reuse, out of gas): retry
    RETRYABLE = "retryable"
    #: the fee is below the node's minimum gas price (sdk 13): retry with a higher price
    INSUFFICIENT_FEE = "insufficient_fee"
    #: the signer cannot pay (sdk 5, proof 1127/1128): fund the account; retry while open
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: account sequence mismatch (sdk 3, 32): ordered txs re-sync the account, then retry
    WRONG_SEQUENCE = "wrong_sequence"
    #: the claim or proof window is closed (proof 1121/1122): final
    WINDOW_CLOSED = "window_closed"
    #: a proof for a claim the chain does not have (proof 1106): final
    CLAIM_MISSING = "claim_missing"
    #: the chain does not need this proof (proof 1129): done, no proof is owed
    PROOF_NOT_REQUIRED = "proof_not_required"
    #: the message itself is wrong (root, header, session, compute units ...): final
    INVALID_CONTENT = "invalid_content"
    #: signing or account configuration (signature, chain id, unknown account ...): final
    CONFIGURATION = "configuration"
    #: the tx is too large for the node (sdk 21): split the batch
    TX_TOO_LARGE = "tx_too_large"
    #: any other failure: retried a bounded number of times
    UNKNOWN = "unknown"
    #: no answer at all (the node could not be reached): not a rejection, never counted
    UNAVAILABLE = "unavailable"

    @property
    def is_final(self) -> bool:
        """True when resending the same content can never succeed."""
        return self in _FINAL


_FINAL = frozenset(
    {
        Rejection.WINDOW_CLOSED,
        Rejection.CLAIM_MISSING,
        Rejection.PROOF_NOT_REQUIRED,
        Rejection.INVALID_CONTENT,
        Rejection.CONFIGURATION,
    }
)

#: cosmos-sdk ``types/errors/errors.go`` (codespace "sdk")
_SDK: dict[int, Rejection] = {
    2: Rejection.CONFIGURATION,  # tx parse error
    3: Rejection.WRONG_SEQUENCE,  # invalid sequence
    4: Rejection.CONFIGURATION,  # unauthorized: signature, account number or chain id
    5: Rejection.INSUFFICIENT_FUNDS,
    7: Rejection.INVALID_CONTENT,  # invalid address
    8: Rejection.CONFIGURATION,  # invalid pubkey
    9: Rejection.CONFIGURATION,  # unknown address: the account does not exist
    10: Rejection.CONFIGURATION,  # invalid coins
    11: Rejection.RETRYABLE,  # out of gas: raise the gas adjustment
    12: Rejection.CONFIGURATION,  # memo too large
    13: Rejection.INSUFFICIENT_FEE,
    18: Rejection.RETRYABLE,  # invalid request: every unordered nonce / ttl error
    19: Rejection.ALREADY_IN_MEMPOOL,
    20: Rejection.RETRYABLE,  # mempool is full
    21: Rejection.TX_TOO_LARGE,
    24: Rejection.CONFIGURATION,  # wrong signer
    28: Rejection.CONFIGURATION,  # invalid chain id
    30: Rejection.RETRYABLE,  # tx timeout height
    32: Rejection.WRONG_SEQUENCE,  # account sequence mismatch
    37: Rejection.CONFIGURATION,  # unordered txs not supported by this chain
    41: Rejection.CONFIGURATION,  # invalid gas limit
    42: Rejection.RETRYABLE,  # tx timeout (timeout_timestamp passed)
}

#: poktroll ``x/proof/types/errors.go`` (codespace "proof")
_PROOF: dict[int, Rejection] = {
    1106: Rejection.CLAIM_MISSING,
    1121: Rejection.WINDOW_CLOSED,
    1122: Rejection.WINDOW_CLOSED,
    1124: Rejection.CONFIGURATION,  # account not found
    1127: Rejection.INSUFFICIENT_FUNDS,  # not enough funds to submit the proof
    1128: Rejection.INSUFFICIENT_FUNDS,  # failed to deduct the proof submission fee
    1129: Rejection.PROOF_NOT_REQUIRED,
}

#: The module error texts a handler failure carries (poktroll ``x/proof/types/errors.go``
#: wording), most specific first. Matched only for code 1 / codespace "undefined".
_HANDLER_TEXTS: tuple[tuple[str, Rejection], ...] = (
    ("claim attempted outside of the session's claim window", Rejection.WINDOW_CLOSED),
    ("proof attempted outside of the session's proof window", Rejection.WINDOW_CLOSED),
    ("proof not required", Rejection.PROOF_NOT_REQUIRED),
    ("claim not found", Rejection.CLAIM_MISSING),
    ("not enough funds to submit proof", Rejection.INSUFFICIENT_FUNDS),
    ("failed to deduct proof submission fee", Rejection.INSUFFICIENT_FUNDS),
    ("insufficient funds", Rejection.INSUFFICIENT_FUNDS),
    ("out of gas", Rejection.RETRYABLE),
    ("supplier not found", Rejection.INVALID_CONTENT),
    ("invalid session ID", Rejection.INVALID_CONTENT),
    ("invalid session header", Rejection.INVALID_CONTENT),
    ("invalid root hash", Rejection.INVALID_CONTENT),
    ("compute units", Rejection.INVALID_CONTENT),
    ("invalid proof", Rejection.INVALID_CONTENT),
    ("invalid relay", Rejection.INVALID_CONTENT),
    ("service not found", Rejection.INVALID_CONTENT),
    ("invalid claimed amount", Rejection.INVALID_CONTENT),
)


def classify(codespace: str, code: int, log: str) -> Rejection:
    """The :class:`Rejection` of a node's ``(codespace, code, log)`` answer.

    Registered codes decide on their own. Code 1 in codespace ``undefined`` (an unregistered
    error: a message handler's gRPC status) is decided on the module's error text.
    """
    if code == 0:
        return Rejection.NONE
    if codespace == "sdk":
        return _SDK.get(code, Rejection.UNKNOWN)
    if codespace == "proof":
        if code in _PROOF:
            return _PROOF[code]
        return Rejection.INVALID_CONTENT if 1100 <= code <= 1131 else Rejection.UNKNOWN
    if codespace in ("undefined", "") and code == 1:
        for text, rejection in _HANDLER_TEXTS:
            if text in log:
                return rejection
    return Rejection.UNKNOWN
