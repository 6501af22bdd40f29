"""Typed Pocket/Cosmos queries over :class:`GrpcQueryClient`, converted to the miner's types.

Method paths and messages are the node's (poktroll v0.1.35, cosmos-sdk v0.53); see
``docs/pocket-chain.md``. A required part missing from an answer is a
:class:`MalformedResponseError` naming the method.
"""

from __future__ import annotations

from dataclasses import dataclass

from relayminer.chain.base import Claim, OnChainSession
from relayminer.chain.pocket.grpc_client import GrpcQueryClient, MalformedResponseError
from relayminer.errors import RelayMinerError
from relayminer.proto import (
    cosmos_auth_pb2,
    cosmos_bank_pb2,
    cosmos_query_pb2,
    pocket_application_pb2,
    pocket_proof_pb2,
    pocket_service_pb2,
    pocket_session_pb2,
    pocket_shared_pb2,
    pocket_supplier_pb2,
)
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams

__all__ = ["Account", "PocketQueries"]

_PAGE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Account:
    address: str
    account_number: int
    sequence: int


def _coin_upokt(method: str, coin: object) -> int:
    amount = getattr(coin, "amount", "") or "0"
    try:
        return int(amount)
    except ValueError:
        raise MalformedResponseError(method, f"coin amount {amount!r} is not an integer") from None


class PocketQueries:
    """The queries a miner makes, each with its own timeout through the client."""

    def __init__(self, client: GrpcQueryClient) -> None:
        self.client = client

    async def shared_params(self, height: int | None = None) -> SharedParams:
        if height is None:
            method = "/pocket.shared.Query/Params"
            live = await self.client.call(
                method,
                pocket_shared_pb2.QueryParamsRequest(),
                pocket_shared_pb2.QueryParamsResponse,
            )
            params = None if live is None else live.params
        else:
            method = "/pocket.shared.Query/ParamsAtHeight"
            at = await self.client.call(
                method,
                pocket_shared_pb2.QueryParamsAtHeightRequest(height=height),
                pocket_shared_pb2.QueryParamsAtHeightResponse,
                cache=True,
            )
            params = None if at is None else at.params
        if params is None or params.num_blocks_per_session == 0:
            raise MalformedResponseError(method, "no shared params")
        try:
            return SharedParams(
                num_blocks_per_session=params.num_blocks_per_session,
                grace_period_end_offset_blocks=params.grace_period_end_offset_blocks,
                claim_window_open_offset_blocks=params.claim_window_open_offset_blocks,
                claim_window_close_offset_blocks=params.claim_window_close_offset_blocks,
                proof_window_open_offset_blocks=params.proof_window_open_offset_blocks,
                proof_window_close_offset_blocks=params.proof_window_close_offset_blocks,
                compute_units_to_tokens_multiplier=params.compute_units_to_tokens_multiplier,
                compute_unit_cost_granularity=params.compute_unit_cost_granularity or 1_000_000,
                session_grid_anchor_height=params.session_grid_anchor_height or 1,
                session_number_at_anchor=params.session_number_at_anchor or 1,
            )
        except (RelayMinerError, TypeError) as err:
            raise MalformedResponseError(method, str(err)) from None

    async def proof_params(self) -> ProofParams:
        method = "/pocket.proof.Query/Params"
        resp = await self.client.call(
            method, pocket_proof_pb2.QueryParamsRequest(), pocket_proof_pb2.QueryParamsResponse
        )
        if resp is None or not resp.HasField("params"):
            raise MalformedResponseError(method, "no proof params")
        p = resp.params
        try:
            return ProofParams(
                proof_requirement_threshold_upokt=_coin_upokt(
                    method, p.proof_requirement_threshold
                ),
                proof_request_probability=p.proof_request_probability,
                proof_missing_penalty_upokt=_coin_upokt(method, p.proof_missing_penalty),
                proof_submission_fee_upokt=_coin_upokt(method, p.proof_submission_fee),
            )
        except RelayMinerError as err:
            if isinstance(err, MalformedResponseError):
                raise
            raise MalformedResponseError(method, str(err)) from None

    async def compute_units_per_relay(self, service_id: str, height: int) -> int | None:
        """CUPR at ``height``; None when the service does not exist."""
        resp = await self.client.call(
            "/pocket.service.Query/ComputeUnitsPerRelayAtHeight",
            pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightRequest(
                serviceId=service_id, blockHeight=height
            ),
            pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightResponse,
            cache=True,
        )
        return None if resp is None else resp.computeUnitsPerRelay

    async def relay_difficulty_target(self, service_id: str, height: int) -> bytes | None:
        """32-byte target hash at ``height``; None when the service does not exist."""
        method = "/pocket.service.Query/RelayMiningDifficultyAtHeight"
        resp = await self.client.call(
            method,
            pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightRequest(
                serviceId=service_id, blockHeight=height
            ),
            pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightResponse,
            cache=True,
        )
        if resp is None:
            return None
        target = bytes(resp.relayMiningDifficulty.target_hash)
        if len(target) != 32:
            raise MalformedResponseError(method, f"target_hash is {len(target)} bytes, not 32")
        return target

    async def session(
        self, application_address: str, service_id: str, height: int
    ) -> OnChainSession | None:
        method = "/pocket.session.Query/GetSession"
        resp = await self.client.call(
            method,
            pocket_session_pb2.QueryGetSessionRequest(
                application_address=application_address, service_id=service_id, block_height=height
            ),
            pocket_session_pb2.QueryGetSessionResponse,
            cache=True,
        )
        if resp is None:
            return None
        session = resp.session
        if not session.header.session_id:
            raise MalformedResponseError(method, "session without a header")
        return OnChainSession(
            header=session.header,
            suppliers=tuple(s.operator_address for s in session.suppliers),
        )

    async def claim(self, supplier: str, session_id: str) -> Claim | None:
        resp = await self.client.call(
            "/pocket.proof.Query/Claim",
            pocket_proof_pb2.QueryGetClaimRequest(
                session_id=session_id, supplier_operator_address=supplier
            ),
            pocket_proof_pb2.QueryGetClaimResponse,
        )
        return None if resp is None else resp.claim

    async def claims(self, supplier: str) -> list[Claim]:
        """Every claim of ``supplier``, following ``next_key`` (guarded against a loop)."""
        method = "/pocket.proof.Query/AllClaims"
        out: list[Claim] = []
        key = b""
        seen: set[bytes] = set()
        while True:
            resp = await self.client.call(
                method,
                pocket_proof_pb2.QueryAllClaimsRequest(
                    pagination=cosmos_query_pb2.PageRequest(key=key, limit=_PAGE_LIMIT),
                    supplier_operator_address=supplier,
                ),
                pocket_proof_pb2.QueryAllClaimsResponse,
            )
            if resp is None:
                return out
            out.extend(resp.claims)
            key = bytes(resp.pagination.next_key)
            if not key:
                return out
            if key in seen:
                raise MalformedResponseError(method, "pagination next_key repeats")
            seen.add(key)

    async def supplier(
        self, operator_address: str
    ) -> pocket_supplier_pb2.QueryGetSupplierResponse | None:
        return await self.client.call(
            "/pocket.supplier.Query/Supplier",
            pocket_supplier_pb2.QueryGetSupplierRequest(
                operator_address=operator_address, dehydrated=True
            ),
            pocket_supplier_pb2.QueryGetSupplierResponse,
        )

    async def application(
        self, address: str
    ) -> pocket_application_pb2.QueryGetApplicationResponse | None:
        return await self.client.call(
            "/pocket.application.Query/Application",
            pocket_application_pb2.QueryGetApplicationRequest(address=address),
            pocket_application_pb2.QueryGetApplicationResponse,
        )

    async def account(self, address: str) -> Account | None:
        method = "/cosmos.auth.v1beta1.Query/Account"
        resp = await self.client.call(
            method,
            cosmos_auth_pb2.QueryAccountRequest(address=address),
            cosmos_auth_pb2.QueryAccountResponse,
        )
        if resp is None:
            return None
        base = cosmos_auth_pb2.BaseAccount()
        if not resp.account.Unpack(base):
            raise MalformedResponseError(
                method, f"account type {resp.account.type_url!r} is not a BaseAccount"
            )
        return Account(base.address, base.account_number, base.sequence)

    async def balance(self, address: str, denom: str = "upokt") -> int:
        method = "/cosmos.bank.v1beta1.Query/Balance"
        resp = await self.client.call(
            method,
            cosmos_bank_pb2.QueryBalanceRequest(address=address, denom=denom),
            cosmos_bank_pb2.QueryBalanceResponse,
        )
        return 0 if resp is None else _coin_upokt(method, resp.balance)
