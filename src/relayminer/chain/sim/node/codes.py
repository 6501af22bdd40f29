"""Error codes and texts as a Cosmos SDK 0.53 / poktroll node reports them.

- :class:`TxError` is a registered error: ``(codespace, code)`` plus a log written the way
  cosmossdk.io/errors prints a wrapped error, ``"<detail>: <registered description>"``
  (cosmos-sdk ``types/errors/errors.go``; poktroll ``x/proof/types/errors.go``);
- a message handler's failure is a gRPC status (code + text). A node reports it in DeliverTx as
  code 1 in codespace ``undefined`` with "failed to execute message; message index: N: rpc
  error: code = C desc = TEXT" (:func:`deliver_log`; the simulated chain writes these logs
  itself, ``chain/sim/errors.py``), and in Simulate as gRPC Unknown (``docs/localnet.md``).

>>> sdk_error(32, "account sequence mismatch, expected 1, got 0").log
'account sequence mismatch, expected 1, got 0: incorrect account sequence'
>>> deliver_log(1, "FailedPrecondition", "proof not required").split("; ")[1]
'message index: 1: rpc error: code = FailedPrecondition desc = proof not required'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "TxError",
    "deliver_log",
    "go_duration",
    "proof_error",
    "sdk_error",
]

#: cosmos-sdk ``types/errors/errors.go`` descriptions (codespace "sdk")
SDK_DESCRIPTIONS: Final[dict[int, str]] = {
    2: "tx parse error",
    3: "invalid sequence",
    4: "unauthorized",
    5: "insufficient funds",
    6: "unknown request",
    7: "invalid address",
    8: "invalid pubkey",
    9: "unknown address",
    10: "invalid coins",
    11: "out of gas",
    12: "memo too large",
    13: "insufficient fee",
    15: "no signatures supplied",
    18: "invalid request",
    19: "tx already in mempool",
    20: "mempool is full",
    21: "tx too large",
    22: "key not found",
    30: "tx timeout height",
    32: "incorrect account sequence",
    37: "feature not supported",
    41: "invalid gas limit",
    42: "tx timeout",
}

#: poktroll ``x/proof/types/errors.go`` descriptions (codespace "proof")
PROOF_DESCRIPTIONS: Final[dict[int, str]] = {
    1101: "invalid address",
    1102: "supplier not found",
    1104: "invalid root hash",
    1106: "claim not found",
    1107: "proof not found",
    1108: "invalid proof",
    1115: "invalid session header",
    1116: "invalid session ID",
    1121: "claim attempted outside of the session's claim window",
    1122: "proof attempted outside of the session's proof window",
    1125: "service not found",
    1126: "the claim's compute units do not match the expected amount",
    1127: "not enough funds to submit proof",
    1129: "proof not required",
}


@dataclass(frozen=True, slots=True)
class TxError(Exception):
    """A registered error rejecting a tx (CheckTx, Simulate or the ante of DeliverTx)."""

    codespace: str
    code: int
    log: str
    gas_used: int = 0

    def __str__(self) -> str:
        return self.log

    def with_gas(self, gas_used: int) -> TxError:
        return TxError(self.codespace, self.code, self.log, gas_used)


def sdk_error(code: int, detail: str = "") -> TxError:
    desc = SDK_DESCRIPTIONS[code]
    return TxError("sdk", code, f"{detail}: {desc}" if detail else desc)


def proof_error(code: int, detail: str = "") -> TxError:
    desc = PROOF_DESCRIPTIONS[code]
    return TxError("proof", code, f"{detail}: {desc}" if detail else desc)


def go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``10m0s``, ``1h0m0s``, ``30s``.

    >>> go_duration(600), go_duration(3600), go_duration(30)
    ('10m0s', '1h0m0s', '30s')
    """
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def deliver_log(msg_index: int, grpc_code: str, text: str) -> str:
    """The log of a tx whose message ``msg_index`` failed with gRPC status ``grpc_code`` and
    ``text`` (baseapp ``runMsgs`` wrapping)."""
    return (
        f"failed to execute message; message index: {msg_index}: "
        f"rpc error: code = {grpc_code} desc = {text}"
    )
