"""Error codes and texts as a Cosmos SDK 0.53 / poktroll node reports them.

- :class:`TxError` is a registered error: ``(codespace, code)`` plus a log written the way
  cosmossdk.io/errors prints a wrapped error, ``"<detail>: <registered description>"``
  (cosmos-sdk ``types/errors/errors.go``; poktroll ``x/proof/types/errors.go``);
- :func:`handler_failure` turns a simulated-chain message rejection into what a poktroll message
  handler returns, a gRPC status (code + text). A node reports that in DeliverTx as code 1 in
  codespace ``undefined`` with "failed to execute message; message index: N: rpc error: code =
  C desc = TEXT" (:func:`deliver_log`), and in Simulate as gRPC Unknown (``docs/localnet.md``).

>>> sdk_error(32, "account sequence mismatch, expected 1, got 0").log
'account sequence mismatch, expected 1, got 0: incorrect account sequence'
>>> handler_failure("claim window: height 9 is outside the claim window [6, 8] ...").grpc_code
'FailedPrecondition'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "HandlerFailure",
    "TxError",
    "deliver_log",
    "go_duration",
    "handler_failure",
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


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A message handler's gRPC status: ``grpc_code`` (Go name) and its text."""

    grpc_code: str
    text: str


# Simulated-chain log prefixes -> (gRPC code, poktroll registered description). A log that
# already carries a poktroll description keeps its text (the simulator may word them so).
_SIM_PREFIXES: Final[tuple[tuple[str, str, int], ...]] = (
    ("claim window", "FailedPrecondition", 1121),
    ("proof window", "FailedPrecondition", 1122),
    ("claim not found", "FailedPrecondition", 1106),
    ("proof not required", "FailedPrecondition", 1129),
    ("insufficient balance", "FailedPrecondition", 1127),
    ("compute units mismatch", "InvalidArgument", 1126),
    ("session header mismatch", "InvalidArgument", 1116),
    ("session not found", "InvalidArgument", 1116),
    ("unknown supplier", "InvalidArgument", 1102),
    ("supplier ", "InvalidArgument", 1102),
    ("failed to decode proof", "InvalidArgument", 1108),
    ("proof is empty", "InvalidArgument", 1108),
    ("unknown service", "NotFound", 1125),
)
_CODE_OF_DESCRIPTION: Final[dict[str, str]] = {
    PROOF_DESCRIPTIONS[code]: grpc for _, grpc, code in _SIM_PREFIXES
}


def handler_failure(sim_log: str) -> HandlerFailure:
    """What a poktroll message handler would have returned for a simulated-chain rejection."""
    for description, grpc_code in _CODE_OF_DESCRIPTION.items():
        if sim_log.endswith(description):
            return HandlerFailure(grpc_code, sim_log)
    for prefix, grpc_code, code in _SIM_PREFIXES:
        if sim_log.startswith(prefix):
            return HandlerFailure(grpc_code, f"{sim_log}: {PROOF_DESCRIPTIONS[code]}")
    return HandlerFailure("Internal", sim_log)


def deliver_log(msg_index: int, failure: HandlerFailure) -> str:
    """The log of a tx whose message ``msg_index`` failed (baseapp ``runMsgs`` wrapping)."""
    return (
        f"failed to execute message; message index: {msg_index}: "
        f"rpc error: code = {failure.grpc_code} desc = {failure.text}"
    )
