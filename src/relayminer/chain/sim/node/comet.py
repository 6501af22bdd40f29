"""CometBFT v0.38 JSON shapes of the localnet's blocks, results and status (pure).

Encoding rules (cometbft ``libs/json``, ``libs/bytes``, gogoproto JSON tags): int64/uint64 are
strings, int32/uint32 numbers; ``[]byte`` is base64, ``HexBytes`` uppercase hex; times are
RFC 3339 with up to nine fractional digits (trailing zeros trimmed) and ``Z``; ``omitempty``
fields are dropped when zero (a successful tx result has no ``code``).

The header fields no client verifies (validator set, consensus, evidence hashes) are fixed
values derived from the chain; the block id hash is the simulated chain's block hash, which is
what session ids and proof paths use.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from relayminer.chain.sim.node.events import AbciEvent
from relayminer.chain.sim.node.store import TxResultDoc

__all__ = [
    "VALIDATOR_ADDRESS",
    "b64",
    "block_id",
    "block_json",
    "block_results_json",
    "exec_tx_result",
    "header_json",
    "hexu",
    "rfc3339nano",
]

_VALIDATOR_KEY: Final = hashlib.sha256(b"relayminer-localnet/validator").digest()
VALIDATOR_ADDRESS: Final = _VALIDATOR_KEY[:20].hex().upper()
EMPTY_HASH: Final = hashlib.sha256(b"").hexdigest().upper()


def hexu(data: bytes) -> str:
    return data.hex().upper()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rfc3339nano(time_ns: int) -> str:
    """Go ``time.RFC3339Nano`` of unix nanoseconds, UTC.

    >>> rfc3339nano(1_787_220_000_123_000_000)
    '2026-08-20T10:00:00.123Z'
    """
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def app_hash(block_hash: bytes) -> bytes:
    return hashlib.sha256(b"relayminer-localnet/app/" + block_hash).digest()


def block_id(block_hash: bytes | None) -> dict[str, Any]:
    if block_hash is None:  # genesis has no previous block
        return {"hash": "", "parts": {"total": 0, "hash": ""}}
    parts = hashlib.sha256(b"relayminer-localnet/parts/" + block_hash).digest()
    return {"hash": hexu(block_hash), "parts": {"total": 1, "hash": hexu(parts)}}


def _data_hash(txs: Sequence[bytes]) -> str:
    if not txs:
        return EMPTY_HASH
    h = hashlib.sha256()
    for tx in txs:
        h.update(hashlib.sha256(tx).digest())
    return hexu(h.digest())


def header_json(
    *,
    chain_id: str,
    height: int,
    time_ns: int,
    block_hash: bytes,
    prev_hash: bytes | None,
    txs: Sequence[bytes],
) -> dict[str, Any]:
    prev_app = app_hash(prev_hash) if prev_hash is not None else b""
    return {
        "version": {"block": "11", "app": "0"},
        "chain_id": chain_id,
        "height": str(height),
        "time": rfc3339nano(time_ns),
        "last_block_id": block_id(prev_hash),
        "last_commit_hash": EMPTY_HASH,
        "data_hash": _data_hash(txs),
        "validators_hash": hexu(hashlib.sha256(_VALIDATOR_KEY).digest()),
        "next_validators_hash": hexu(hashlib.sha256(_VALIDATOR_KEY).digest()),
        "consensus_hash": hexu(hashlib.sha256(b"relayminer-localnet/consensus").digest()),
        "app_hash": hexu(prev_app),
        "last_results_hash": EMPTY_HASH,
        "evidence_hash": EMPTY_HASH,
        "proposer_address": VALIDATOR_ADDRESS,
    }


def block_json(
    *,
    chain_id: str,
    height: int,
    time_ns: int,
    block_hash: bytes,
    prev_hash: bytes | None,
    prev_time_ns: int,
    txs: Sequence[bytes],
) -> dict[str, Any]:
    """``/block`` result: ``{"block_id", "block"}``."""
    header = header_json(
        chain_id=chain_id,
        height=height,
        time_ns=time_ns,
        block_hash=block_hash,
        prev_hash=prev_hash,
        txs=txs,
    )
    signatures = []
    if prev_hash is not None:
        signature = hashlib.sha512(b"relayminer-localnet/commit/" + prev_hash).digest()
        signatures.append(
            {
                "block_id_flag": 2,
                "validator_address": VALIDATOR_ADDRESS,
                "timestamp": rfc3339nano(prev_time_ns),
                "signature": b64(signature),
            }
        )
    return {
        "block_id": block_id(block_hash),
        "block": {
            "header": header,
            "data": {"txs": [b64(tx) for tx in txs]},
            "evidence": {"evidence": []},
            "last_commit": {
                "height": str(max(height - 1, 0)),
                "round": 0,
                "block_id": block_id(prev_hash),
                "signatures": signatures,
            },
        },
    }


def exec_tx_result(doc: TxResultDoc) -> dict[str, Any]:
    """ABCI ``ExecTxResult`` JSON: zero fields omitted."""
    out: dict[str, Any] = {}
    if doc.code:
        out["code"] = doc.code
    if doc.data:
        out["data"] = b64(doc.data)
    if doc.log:
        out["log"] = doc.log
    if doc.gas_wanted:
        out["gas_wanted"] = str(doc.gas_wanted)
    if doc.gas_used:
        out["gas_used"] = str(doc.gas_used)
    if doc.events:
        out["events"] = [e.to_json() for e in doc.events]
    if doc.codespace:
        out["codespace"] = doc.codespace
    return out


def block_results_json(
    height: int, txs: Sequence[TxResultDoc], events: Sequence[AbciEvent], block_hash: bytes
) -> dict[str, Any]:
    """``/block_results`` result (``txs_results`` null for an empty block)."""
    return {
        "height": str(height),
        "txs_results": [exec_tx_result(d) for d in txs] if txs else None,
        "finalize_block_events": [e.to_json() for e in events],
        "validator_updates": None,
        "consensus_param_updates": None,
        "app_hash": b64(app_hash(block_hash)),
    }


def flatten_events(events: Sequence[AbciEvent]) -> dict[str, list[str]]:
    """The websocket ``events`` map: ``"<type>.<key>": [values]``."""
    out: dict[str, list[str]] = {}
    for event in events:
        for key, value in event.attributes:
            out.setdefault(f"{event.type}.{key}", []).append(value)
    return out
