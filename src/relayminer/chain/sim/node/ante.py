"""The checks a Cosmos SDK 0.53 node runs on a transaction before its messages execute.

Pure: :func:`run_ante` takes the decoded tx, the context (mode, chain id, block height and
time, node settings) and a snapshot of the accounts it touches, and returns the state changes
to apply (:class:`AnteEffects`) or raises :class:`~relayminer.chain.sim.node.codes.TxError`
with the SDK's codespace, code and log. Order and wording follow baseapp ``runTx`` and the
default ante chain (``x/auth/ante``): message ValidateBasic (poktroll ``proof`` codes), tx
ValidateBasic, unordered-tx switch, timeouts, memo, tx-size gas, fee (CheckTx minimum gas
price, then deduction), signer count, public keys, signature gas, signatures and sequences,
unordered nonces, sequence increments.

Modes: ``CHECK`` (CheckTx: the minimum gas price applies), ``SIMULATE`` (no signature check,
no fee-price check, unlimited gas, nothing recorded) and ``DELIVER``.

Gas is a deterministic model (``docs/localnet.md``): 10 per tx byte and 1000 per signature as
the SDK charges, 2240 extra per unordered tx, a flat 10000 for the account reads and writes,
and per message 60000 + 20 per message byte for execution.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from relayminer.chain.base import MsgCreateClaim, MsgSubmitProof, SessionHeader
from relayminer.chain.sim.node.codes import TxError, go_duration, proof_error, sdk_error
from relayminer.chain.sim.node.crypto import address_from_pubkey, is_address, verify_signature
from relayminer.chain.sim.node.txcodec import DecodedTx
from relayminer.proto.cosmos_crypto_secp256k1_pb2 import PubKey
from relayminer.proto.cosmos_tx_signing_pb2 import SIGN_MODE_DIRECT
from relayminer.protocol.proof_requirement import SMST_ROOT_SIZE, parse_claim_root

__all__ = [
    "AccountState",
    "AnteContext",
    "AnteEffects",
    "Mode",
    "execution_gas",
    "run_ante",
    "validate_basic",
]

DENOM: Final = "upokt"
PUBKEY_TYPE_URL: Final = "/cosmos.crypto.secp256k1.PubKey"
TX_SIZE_COST_PER_BYTE: Final = 10
SIG_VERIFY_COST_SECP256K1: Final = 1000
UNORDERED_TX_GAS: Final = 2240
ACCOUNT_ACCESS_GAS: Final = 10_000
MSG_BASE_GAS: Final = 60_000
MSG_GAS_PER_BYTE: Final = 20
MAX_MEMO_CHARACTERS: Final = 256


class Mode(enum.Enum):
    CHECK = "check"
    SIMULATE = "simulate"
    DELIVER = "deliver"


@dataclass(frozen=True, slots=True)
class AccountState:
    address: str
    number: int
    sequence: int
    pubkey: bytes | None  # 33-byte compressed key; None until the account's first tx


@dataclass(frozen=True, slots=True)
class AnteContext:
    mode: Mode
    chain_id: str
    block_height: int  # the context's height (last committed for CheckTx and Simulate)
    block_time_ns: int
    min_gas_price: Decimal  # uPOKT per gas unit
    unordered_enabled: bool = True
    max_unordered_ttl_seconds: int = 600
    max_gas: int = 100_000_000


@dataclass(frozen=True, slots=True)
class AnteInputs:
    """What the ante reads: the signers' and fee payer's accounts, the fee payer's balance and
    which unordered nonces ``(signer, timeout unix nanos)`` are already used."""

    accounts: Mapping[str, AccountState | None]
    fee_payer_balance: int
    used_nonces: frozenset[tuple[str, int]] = frozenset()


@dataclass(slots=True)
class AnteEffects:
    fee_payer: str
    fee_upokt: int
    gas_used: int
    pubkeys: dict[str, bytes] = field(default_factory=dict)  # accounts learning their key
    sequence_increments: list[str] = field(default_factory=list)
    nonces: list[tuple[str, int]] = field(default_factory=list)


# --- message ValidateBasic (stateless, poktroll x/proof/types) --------------------------------


def _validate_header(header: SessionHeader) -> None:
    if not is_address(header.application_address):
        raise proof_error(
            1115, f"invalid application address {header.application_address!r} in session header"
        )
    if not header.session_id:
        raise proof_error(1115, "session header: session id is empty")
    if not header.service_id or len(header.service_id) > 42:
        raise proof_error(1115, f"session header: invalid service id {header.service_id!r}")
    start, end = header.session_start_block_height, header.session_end_block_height
    if start < 1:
        raise proof_error(1115, f"session header: invalid session start height {start}")
    if end <= start:
        raise proof_error(
            1115, f"session header: session end height {end} is not after the start {start}"
        )


def validate_basic(tx: DecodedTx) -> None:
    """baseapp ``validateBasicTxMsgs``: at least one message, each message's ValidateBasic."""
    if not tx.msgs:
        raise sdk_error(18, "must contain at least one message")
    for msg in tx.msgs:
        supplier = msg.supplier_operator_address
        if not is_address(supplier):
            raise proof_error(1101, f"invalid supplier operator address {supplier!r}")
        if not msg.HasField("session_header"):
            raise proof_error(1115, "session header is missing")
        _validate_header(msg.session_header)
        if isinstance(msg, MsgCreateClaim):
            if len(msg.root_hash) != SMST_ROOT_SIZE:
                raise proof_error(
                    1104, f"root hash must be {SMST_ROOT_SIZE} bytes, got {len(msg.root_hash)}"
                )
            root = parse_claim_root(msg.root_hash)
            if root.count == 0 or root.sum == 0:
                raise proof_error(1104, "root hash has a zero relay count or compute unit sum")
        elif isinstance(msg, MsgSubmitProof) and not msg.proof:
            raise proof_error(1108, "proof cannot be empty")


def execution_gas(tx: DecodedTx) -> int:
    """Gas the messages use when they execute (the model in the module docstring)."""
    return sum(MSG_BASE_GAS + MSG_GAS_PER_BYTE * m.ByteSize() for m in tx.msgs)


# --- the ante chain ----------------------------------------------------------------------------


class _GasMeter:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def consume(self, amount: int, what: str) -> None:
        self.used += amount
        if self.limit is not None and self.used > self.limit:
            raise sdk_error(
                11,
                f"out of gas in location: {what}; gasWanted: {self.limit}, gasUsed: {self.used}",
            ).with_gas(self.used)


def _fee_upokt(tx: DecodedTx) -> int:
    amount = 0
    for coin in tx.auth_info.fee.amount:
        if not coin.denom or not coin.amount.isdigit() or int(coin.amount) == 0:
            raise sdk_error(10, f"invalid fee coin {coin.amount}{coin.denom}")
        if coin.denom == DENOM:
            amount += int(coin.amount)
    return amount


def _fee_text(tx: DecodedTx) -> str:
    return ",".join(f"{c.amount}{c.denom}" for c in tx.auth_info.fee.amount)


def _check_timeouts(tx: DecodedTx, ctx: AnteContext) -> None:
    body = tx.body
    if body.timeout_height and ctx.block_height > body.timeout_height:
        raise sdk_error(
            30, f"block height: {ctx.block_height}, timeout height: {body.timeout_height}"
        )
    timeout = tx.timeout_unix_nanos
    if timeout and timeout < ctx.block_time_ns:
        raise sdk_error(42, f"block time: {ctx.block_time_ns}, timeout timestamp: {timeout}")


def _check_unordered(tx: DecodedTx, ctx: AnteContext, inputs: AnteInputs) -> list[tuple[str, int]]:
    timeout = tx.timeout_unix_nanos
    if timeout == 0:
        raise sdk_error(18, "unordered transaction must have timeout_timestamp set")
    if timeout < ctx.block_time_ns:
        raise sdk_error(18, "unordered transaction has a timeout_timestamp that has already passed")
    ttl = ctx.max_unordered_ttl_seconds
    if timeout > ctx.block_time_ns + ttl * 1_000_000_000:
        raise sdk_error(18, f"unordered tx ttl exceeds {go_duration(ttl)}")
    nonces = [(signer, timeout) for signer in tx.signers]
    for nonce in nonces:
        if nonce in inputs.used_nonces:
            raise sdk_error(18, "failed to add unordered nonce: already used timeout")
    return nonces


def _pubkey_of(tx: DecodedTx, index: int, signer: str) -> bytes | None:
    info = tx.auth_info.signer_infos[index]
    if not info.HasField("public_key"):
        return None
    if info.public_key.type_url != PUBKEY_TYPE_URL:
        raise sdk_error(8, f"unsupported public key type {info.public_key.type_url}")
    key = PubKey.FromString(info.public_key.value).key
    if len(key) != 33 or address_from_pubkey(key) != signer:
        raise sdk_error(
            8, f"pubKey does not match signer address {signer} with signer index: {index}"
        )
    return key


def run_ante(tx: DecodedTx, ctx: AnteContext, inputs: AnteInputs) -> AnteEffects:
    """Run the ante chain (module docstring); the effects to apply, or raise TxError."""
    validate_basic(tx)
    simulate = ctx.mode is Mode.SIMULATE
    signers = tx.signers
    sigs = list(tx.tx_raw.signatures)
    if not sigs:
        raise sdk_error(15)
    if len(sigs) != len(tx.auth_info.signer_infos):
        raise sdk_error(
            4,
            f"wrong number of signatures; expected {len(tx.auth_info.signer_infos)}, "
            f"got {len(sigs)}",
        )
    gas_limit = tx.gas_limit
    if not simulate and gas_limit > ctx.max_gas:
        raise sdk_error(41, f"gas limit {gas_limit} exceeds the maximum {ctx.max_gas}")
    fee = _fee_upokt(tx)
    unordered = tx.body.unordered
    if unordered and not ctx.unordered_enabled:
        raise sdk_error(37, "unordered transactions are not enabled")
    _check_timeouts(tx, ctx)
    if len(tx.body.memo) > MAX_MEMO_CHARACTERS:
        raise sdk_error(
            12,
            f"maximum number of characters is {MAX_MEMO_CHARACTERS} but received "
            f"{len(tx.body.memo)} characters",
        )
    gas = _GasMeter(None if simulate else gas_limit)
    gas.consume(TX_SIZE_COST_PER_BYTE * len(tx.raw) + ACCOUNT_ACCESS_GAS, "txSize")
    if unordered:
        gas.consume(UNORDERED_TX_GAS, "unordered tx")
    # fee: payer exists, minimum gas price (CheckTx only), deduction
    payer = tx.auth_info.fee.payer or signers[0]
    if inputs.accounts.get(payer) is None:
        raise sdk_error(9, f"fee payer address: {payer} does not exist").with_gas(gas.used)
    if ctx.mode is Mode.CHECK and ctx.min_gas_price > 0:
        required = math.ceil(Decimal(gas_limit) * ctx.min_gas_price)
        if fee < required:
            raise sdk_error(
                13, f"insufficient fees; got: {_fee_text(tx)} required: {required}{DENOM}"
            ).with_gas(gas.used)
    if fee > inputs.fee_payer_balance:
        raise sdk_error(
            5,
            f"spendable balance {inputs.fee_payer_balance}{DENOM} is smaller than {fee}{DENOM}: "
            "insufficient funds",
        ).with_gas(gas.used)
    effects = AnteEffects(fee_payer=payer, fee_upokt=fee, gas_used=0)
    # signers and their keys
    if len(signers) != len(tx.auth_info.signer_infos):
        raise sdk_error(
            4,
            f"invalid number of signer;  expected: {len(signers)}, "
            f"got {len(tx.auth_info.signer_infos)}",
        ).with_gas(gas.used)
    for index, signer in enumerate(signers):
        account = inputs.accounts.get(signer)
        if account is None:
            raise sdk_error(9, f"account {signer} does not exist").with_gas(gas.used)
        key = None if simulate else _pubkey_of(tx, index, signer)
        if key is not None and account.pubkey is None:
            effects.pubkeys[signer] = key
        gas.consume(SIG_VERIFY_COST_SECP256K1, "ante verify: secp256k1")
        pubkey = account.pubkey or effects.pubkeys.get(signer)
        if pubkey is None and not simulate:
            raise sdk_error(8, "pubkey on account is not set").with_gas(gas.used)
        info = tx.auth_info.signer_infos[index]
        if unordered:
            if info.sequence != 0:
                raise sdk_error(18, "sequence is not allowed for unordered transactions")
        elif info.sequence != account.sequence:
            raise sdk_error(
                32, f"account sequence mismatch, expected {account.sequence}, got {info.sequence}"
            ).with_gas(gas.used)
        if simulate:
            continue
        single = info.mode_info.single if info.mode_info.HasField("single") else None
        valid = (
            single is not None
            and single.mode == SIGN_MODE_DIRECT
            and pubkey is not None
            and verify_signature(pubkey, tx.sign_bytes(ctx.chain_id, account.number), sigs[index])
        )
        if not valid:
            raise sdk_error(
                4,
                f"signature verification failed; please verify account number "
                f"({account.number}) and chain-id ({ctx.chain_id})",
            ).with_gas(gas.used)
    if unordered:
        try:
            effects.nonces = _check_unordered(tx, ctx, inputs)
        except TxError as err:
            raise err.with_gas(gas.used) from None
    else:
        effects.sequence_increments = list(signers)
    effects.gas_used = gas.used
    return effects
