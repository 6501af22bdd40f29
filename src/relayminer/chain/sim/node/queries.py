"""The localnet's module queries: one table of gRPC methods, served over gRPC and ``abci_query``.

Each handler takes the request message and returns the response message or raises
:class:`QueryError` with the gRPC status a poktroll / Cosmos SDK node returns (NotFound for a
missing claim, supplier, application, service or account; InvalidArgument for bad arguments;
Internal for every session hydration failure; ``docs/localnet.md`` lists them). The simulated
chain keeps no state history: a query at a past height is answered from the latest state, and a
height above the latest block is refused as the SDK refuses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from relayminer.chain.base import Claim
from relayminer.chain.sim.errors import SimSessionError
from relayminer.chain.sim.node.app import LocalApp
from relayminer.chain.sim.node.crypto import decode_address
from relayminer.chain.sim.sessions import session_for
from relayminer.proto import (
    cosmos_auth_pb2,
    cosmos_bank_pb2,
    cosmos_base_pb2,
    cosmos_crypto_secp256k1_pb2,
    cosmos_query_pb2,
    pocket_application_pb2,
    pocket_proof_pb2,
    pocket_service_pb2,
    pocket_session_pb2,
    pocket_shared_pb2,
    pocket_supplier_pb2,
)
from relayminer.protocol.windows import session_number

__all__ = ["METHODS", "Method", "Queries", "QueryError"]

DENOM = "upokt"
_DEFAULT_PAGE_LIMIT = 100
T = TypeVar("T")


class QueryError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> QueryError:
    return QueryError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _coin(amount: int) -> cosmos_base_pb2.Coin:
    return cosmos_base_pb2.Coin(denom=DENOM, amount=str(amount))


def _check_address(address: str, what: str) -> None:
    try:
        decode_address(address)
    except ValueError as err:
        raise _invalid(f"invalid {what} address {address!r}: {err}") from None


def paginate(
    items: Sequence[T], key_of: Callable[[T], bytes], page: cosmos_query_pb2.PageRequest
) -> tuple[list[T], cosmos_query_pb2.PageResponse]:
    """Cosmos SDK pagination over ``items`` (sorted by ``key_of``): by ``key`` or ``offset``,
    ``limit`` (default 100), ``reverse``, ``count_total``; ``next_key`` empty on the last page."""
    if page.key and page.offset:
        raise _invalid("either offset or key is expected, got both")
    ordered = list(reversed(items)) if page.reverse else list(items)
    start = page.offset
    if page.key:
        keys = [key_of(i) for i in ordered]
        start = keys.index(page.key) if page.key in keys else len(ordered)
    limit = page.limit or _DEFAULT_PAGE_LIMIT
    chunk = ordered[start : start + limit]
    rest = ordered[start + limit :]
    response = cosmos_query_pb2.PageResponse(next_key=key_of(rest[0]) if rest else b"")
    if page.count_total:
        response.total = len(items)
    return chunk, response


@dataclass(frozen=True, slots=True)
class Method:
    path: str
    request: type[Message]
    handler: Callable[[Queries, Any], Awaitable[Message]]


class Queries:
    """Handlers of every query method (the paths in :data:`METHODS`)."""

    def __init__(self, app: LocalApp) -> None:
        self.app = app
        self.chain = app.chain
        self.config = app.config

    async def call(self, path: str, request: Message) -> Message:
        method = METHODS.get(path)
        if method is None:
            raise QueryError(grpc.StatusCode.UNIMPLEMENTED, f"unknown query path {path}")
        return await method.handler(self, request)

    async def latest_height(self) -> int:
        return (await self.chain.latest_block()).height

    # --- shared ----------------------------------------------------------------------------

    def _shared_params(self) -> pocket_shared_pb2.Params:
        p = self.chain.config.shared_params
        return pocket_shared_pb2.Params(
            num_blocks_per_session=p.num_blocks_per_session,
            grace_period_end_offset_blocks=p.grace_period_end_offset_blocks,
            claim_window_open_offset_blocks=p.claim_window_open_offset_blocks,
            claim_window_close_offset_blocks=p.claim_window_close_offset_blocks,
            proof_window_open_offset_blocks=p.proof_window_open_offset_blocks,
            proof_window_close_offset_blocks=p.proof_window_close_offset_blocks,
            supplier_unbonding_period_sessions=1,
            application_unbonding_period_sessions=1,
            compute_units_to_tokens_multiplier=p.compute_units_to_tokens_multiplier,
            gateway_unbonding_period_sessions=1,
            compute_unit_cost_granularity=p.compute_unit_cost_granularity,
            session_grid_anchor_height=p.session_grid_anchor_height,
            session_number_at_anchor=p.session_number_at_anchor,
        )

    async def shared_params(self, _: Any) -> Message:
        return pocket_shared_pb2.QueryParamsResponse(params=self._shared_params())

    async def shared_params_at_height(
        self, req: pocket_shared_pb2.QueryParamsAtHeightRequest
    ) -> Message:
        if req.height < 0:
            raise _invalid(f"invalid height {req.height}: must be >= 0")
        return pocket_shared_pb2.QueryParamsAtHeightResponse(params=self._shared_params())

    # --- session ---------------------------------------------------------------------------

    async def session_params(self, _: Any) -> Message:
        n = self.chain.config.num_suppliers_per_session
        return pocket_session_pb2.QueryParamsResponse(
            params=pocket_session_pb2.Params(num_suppliers_per_session=n)
        )

    async def get_session(self, req: pocket_session_pb2.QueryGetSessionRequest) -> Message:
        latest = await self.latest_height()
        height = req.block_height if req.block_height > 0 else latest
        internal = grpc.StatusCode.INTERNAL
        if height > latest:
            raise QueryError(
                internal,
                f"block height {height} is ahead of the last committed block height {latest}",
            )
        try:
            session = session_for(
                self.chain.config, req.application_address, req.service_id, height
            )
        except SimSessionError as err:
            raise QueryError(internal, f"error during session hydration: {err}") from None
        h = session.header
        p = self.chain.config.shared_params
        return pocket_session_pb2.QueryGetSessionResponse(
            session=pocket_session_pb2.Session(
                header=h,
                session_id=h.session_id,
                session_number=session_number(p, h.session_start_block_height),
                num_blocks_per_session=p.num_blocks_per_session,
                application=await self._application(req.application_address),
                suppliers=[await self._supplier(s) for s in session.suppliers],
            )
        )

    # --- application / supplier -----------------------------------------------------------

    async def _application(self, address: str) -> pocket_application_pb2.Application:
        services = self.chain.config.applications[address]
        return pocket_application_pb2.Application(
            address=address,
            stake=_coin(await self.chain.application_stake(address)),
            service_configs=[
                pocket_shared_pb2.ApplicationServiceConfig(service_id=s) for s in services
            ],
        )

    async def application(self, req: pocket_application_pb2.QueryGetApplicationRequest) -> Message:
        _check_address(req.address, "application")
        if req.address not in self.chain.config.applications:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"application {req.address} not found")
        return pocket_application_pb2.QueryGetApplicationResponse(
            application=await self._application(req.address)
        )

    async def _supplier(
        self, operator: str, dehydrated: bool = False
    ) -> pocket_shared_pb2.Supplier:
        services = []
        for sid in self.chain.config.suppliers[operator]:
            services.append(
                pocket_shared_pb2.SupplierServiceConfig(
                    service_id=sid,
                    endpoints=[
                        pocket_shared_pb2.SupplierEndpoint(
                            url="http://127.0.0.1:8545", rpc_type=pocket_shared_pb2.JSON_RPC
                        )
                    ],
                    rev_share=[
                        pocket_shared_pb2.ServiceRevenueShare(
                            address=operator, rev_share_percentage=100
                        )
                    ],
                )
            )
        supplier = pocket_shared_pb2.Supplier(
            owner_address=operator,
            operator_address=operator,
            stake=_coin(await self.chain.supplier_stake(operator)),
            services=services,
        )
        if not dehydrated:
            for svc in services:
                supplier.service_config_history.append(
                    pocket_shared_pb2.ServiceConfigUpdate(
                        operator_address=operator, service=svc, activation_height=1
                    )
                )
        return supplier

    async def supplier(self, req: pocket_supplier_pb2.QueryGetSupplierRequest) -> Message:
        _check_address(req.operator_address, "supplier operator")
        if req.operator_address not in self.chain.config.suppliers:
            raise QueryError(
                grpc.StatusCode.NOT_FOUND, f"supplier with address {req.operator_address} not found"
            )
        return pocket_supplier_pb2.QueryGetSupplierResponse(
            supplier=await self._supplier(req.operator_address, req.dehydrated)
        )

    # --- proof -----------------------------------------------------------------------------

    async def proof_params(self, _: Any) -> Message:
        p = self.chain.config.proof_params
        return pocket_proof_pb2.QueryParamsResponse(
            params=pocket_proof_pb2.Params(
                proof_request_probability=p.proof_request_probability,
                proof_requirement_threshold=_coin(p.proof_requirement_threshold_upokt),
                proof_missing_penalty=_coin(p.proof_missing_penalty_upokt),
                proof_submission_fee=_coin(p.proof_submission_fee_upokt),
            )
        )

    async def claim(self, req: pocket_proof_pb2.QueryGetClaimRequest) -> Message:
        if not req.session_id:
            raise _invalid("invalid session ID: session ID cannot be empty")
        _check_address(req.supplier_operator_address, "supplier operator")
        claim = await self.chain.get_claim(req.supplier_operator_address, req.session_id)
        if claim is None:
            raise QueryError(
                grpc.StatusCode.NOT_FOUND,
                f"session ID {req.session_id!r} and supplier {req.supplier_operator_address!r}: "
                "claim not found",
            )
        return pocket_proof_pb2.QueryGetClaimResponse(claim=claim)

    async def _all_claims(self) -> list[Claim]:
        out: list[Claim] = []
        for supplier in sorted(self.chain.config.suppliers):
            out.extend(await self.chain.claims(supplier))
        return out

    async def all_claims(self, req: pocket_proof_pb2.QueryAllClaimsRequest) -> Message:
        which = req.WhichOneof("filter")
        if which == "supplier_operator_address":
            _check_address(req.supplier_operator_address, "supplier operator")
            claims = await self.chain.claims(req.supplier_operator_address)
        else:
            claims = await self._all_claims()
            if which == "session_id":
                claims = [c for c in claims if c.session_header.session_id == req.session_id]
            elif which == "session_end_height":
                end = req.session_end_height
                claims = [c for c in claims if c.session_header.session_end_block_height == end]

        def key(c: Claim) -> bytes:
            return f"{c.supplier_operator_address}/{c.session_header.session_id}".encode()

        claims.sort(key=key)
        page, response = paginate(claims, key, req.pagination)
        return pocket_proof_pb2.QueryAllClaimsResponse(claims=page, pagination=response)

    async def proof(self, req: pocket_proof_pb2.QueryGetProofRequest) -> Message:
        if not req.session_id:
            raise _invalid("invalid session ID: session ID cannot be empty")
        _check_address(req.supplier_operator_address, "supplier operator")
        # proofs are validated and removed by the proof EndBlocker of the block holding them
        raise QueryError(
            grpc.StatusCode.NOT_FOUND,
            f"session ID {req.session_id!r} and supplier {req.supplier_operator_address!r}: "
            "proof not found",
        )

    async def all_proofs(self, req: pocket_proof_pb2.QueryAllProofsRequest) -> Message:
        page = req.pagination
        if page.key and page.offset:
            raise _invalid("either offset or key is expected, got both")
        response = cosmos_query_pb2.PageResponse()
        if page.count_total:
            response.total = 0
        return pocket_proof_pb2.QueryAllProofsResponse(pagination=response)

    # --- service ---------------------------------------------------------------------------

    def _service_config(self, service_id: str) -> Any:
        if not service_id:
            raise _invalid("invalid service ID: service ID cannot be empty")
        svc = self.chain.config.services.get(service_id)
        if svc is None:
            raise QueryError(
                grpc.StatusCode.NOT_FOUND, f"service ID {service_id!r}: service not found"
            )
        return svc

    async def service_params(self, _: Any) -> Message:
        sp = self.config.service_params
        return pocket_service_pb2.QueryParamsResponse(
            params=pocket_service_pb2.Params(
                add_service_fee=_coin(sp.add_service_fee_upokt),
                target_num_relays=sp.target_num_relays,
            )
        )

    async def service(self, req: pocket_service_pb2.QueryGetServiceRequest) -> Message:
        svc = self._service_config(req.id)
        entry = self.config.service(req.id)
        return pocket_service_pb2.QueryGetServiceResponse(
            service=pocket_shared_pb2.Service(
                id=req.id,
                name=entry.name if entry is not None and entry.name else req.id,
                compute_units_per_relay=svc.compute_units_per_relay,
                owner_address=svc.owner_address,
            )
        )

    async def _difficulty(
        self, service_id: str, height: int
    ) -> pocket_service_pb2.RelayMiningDifficulty:
        if height < 0:
            raise _invalid(f"invalid block height {height}: must be >= 0")
        svc = self._service_config(service_id)
        return pocket_service_pb2.RelayMiningDifficulty(
            service_id=service_id,
            block_height=height or await self.latest_height(),
            num_relays_ema=self.config.service_params.target_num_relays,
            target_hash=svc.relay_difficulty_target,
        )

    async def difficulty(self, req: Any) -> Message:
        return pocket_service_pb2.QueryGetRelayMiningDifficultyResponse(
            relayMiningDifficulty=await self._difficulty(req.serviceId, 0)
        )

    async def difficulty_at_height(self, req: Any) -> Message:
        return pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightResponse(
            relayMiningDifficulty=await self._difficulty(req.serviceId, req.blockHeight)
        )

    async def difficulty_history(self, req: Any) -> Message:
        entry = pocket_service_pb2.RelayMiningDifficultyUpdate(
            effective_height=1, difficulty=await self._difficulty(req.serviceId, 1)
        )
        page, response = paginate([entry], lambda e: b"1", req.pagination)
        return pocket_service_pb2.QueryGetRelayMiningDifficultyHistoryResponse(
            relayMiningDifficultyHistory=page, pagination=response
        )

    async def cupr_at_height(self, req: Any) -> Message:
        if req.blockHeight < 0:
            raise _invalid(f"invalid block height {req.blockHeight}: must be >= 0")
        svc = self._service_config(req.serviceId)
        return pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightResponse(
            computeUnitsPerRelay=svc.compute_units_per_relay
        )

    async def cupr_history(self, req: Any) -> Message:
        svc = self._service_config(req.serviceId)
        entry = pocket_service_pb2.ServiceComputeUnitsPerRelayUpdate(
            effective_height=1,
            service_id=req.serviceId,
            compute_units_per_relay=svc.compute_units_per_relay,
        )
        page, response = paginate([entry], lambda e: b"1", req.pagination)
        return pocket_service_pb2.QueryGetComputeUnitsPerRelayHistoryResponse(
            computeUnitsPerRelayHistory=page, pagination=response
        )

    # --- auth / bank -----------------------------------------------------------------------

    async def account(self, req: cosmos_auth_pb2.QueryAccountRequest) -> Message:
        if not req.address:
            raise _invalid("Address cannot be empty")
        _check_address(req.address, "account")
        account = await self.app.accounts.get(req.address)
        if account is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"account {req.address} not found")
        base = cosmos_auth_pb2.BaseAccount(
            address=req.address, account_number=account.number, sequence=account.sequence
        )
        if account.pubkey is not None:
            base.pub_key.Pack(
                cosmos_crypto_secp256k1_pb2.PubKey(key=account.pubkey), type_url_prefix="/"
            )
        packed = AnyProto()
        packed.Pack(base, type_url_prefix="/")
        return cosmos_auth_pb2.QueryAccountResponse(account=packed)

    async def balance(self, req: cosmos_bank_pb2.QueryBalanceRequest) -> Message:
        _check_address(req.address, "account")
        if not req.denom:
            raise _invalid("invalid denom")
        amount = await self.app.accounts.balance(req.address) if req.denom == DENOM else 0
        return cosmos_bank_pb2.QueryBalanceResponse(
            balance=cosmos_base_pb2.Coin(denom=req.denom, amount=str(amount))
        )


def _m(
    path: str, request: type[Message], handler: Callable[[Queries, Any], Awaitable[Message]]
) -> tuple[str, Method]:
    return path, Method(path, request, handler)


METHODS: dict[str, Method] = dict(
    [
        _m(
            "/pocket.shared.Query/Params",
            pocket_shared_pb2.QueryParamsRequest,
            Queries.shared_params,
        ),
        _m(
            "/pocket.shared.Query/ParamsAtHeight",
            pocket_shared_pb2.QueryParamsAtHeightRequest,
            Queries.shared_params_at_height,
        ),
        _m(
            "/pocket.session.Query/Params",
            pocket_session_pb2.QueryParamsRequest,
            Queries.session_params,
        ),
        _m(
            "/pocket.session.Query/GetSession",
            pocket_session_pb2.QueryGetSessionRequest,
            Queries.get_session,
        ),
        _m(
            "/pocket.application.Query/Application",
            pocket_application_pb2.QueryGetApplicationRequest,
            Queries.application,
        ),
        _m("/pocket.proof.Query/Params", pocket_proof_pb2.QueryParamsRequest, Queries.proof_params),
        _m("/pocket.proof.Query/Claim", pocket_proof_pb2.QueryGetClaimRequest, Queries.claim),
        _m(
            "/pocket.proof.Query/AllClaims",
            pocket_proof_pb2.QueryAllClaimsRequest,
            Queries.all_claims,
        ),
        _m("/pocket.proof.Query/Proof", pocket_proof_pb2.QueryGetProofRequest, Queries.proof),
        _m(
            "/pocket.proof.Query/AllProofs",
            pocket_proof_pb2.QueryAllProofsRequest,
            Queries.all_proofs,
        ),
        _m(
            "/pocket.service.Query/Params",
            pocket_service_pb2.QueryParamsRequest,
            Queries.service_params,
        ),
        _m(
            "/pocket.service.Query/Service",
            pocket_service_pb2.QueryGetServiceRequest,
            Queries.service,
        ),
        _m(
            "/pocket.service.Query/RelayMiningDifficulty",
            pocket_service_pb2.QueryGetRelayMiningDifficultyRequest,
            Queries.difficulty,
        ),
        _m(
            "/pocket.service.Query/RelayMiningDifficultyAtHeight",
            pocket_service_pb2.QueryGetRelayMiningDifficultyAtHeightRequest,
            Queries.difficulty_at_height,
        ),
        _m(
            "/pocket.service.Query/RelayMiningDifficultyHistory",
            pocket_service_pb2.QueryGetRelayMiningDifficultyHistoryRequest,
            Queries.difficulty_history,
        ),
        _m(
            "/pocket.service.Query/ComputeUnitsPerRelayAtHeight",
            pocket_service_pb2.QueryGetComputeUnitsPerRelayAtHeightRequest,
            Queries.cupr_at_height,
        ),
        _m(
            "/pocket.service.Query/ComputeUnitsPerRelayHistory",
            pocket_service_pb2.QueryGetComputeUnitsPerRelayHistoryRequest,
            Queries.cupr_history,
        ),
        _m(
            "/cosmos.auth.v1beta1.Query/Account",
            cosmos_auth_pb2.QueryAccountRequest,
            Queries.account,
        ),
        _m(
            "/pocket.supplier.Query/Supplier",
            pocket_supplier_pb2.QueryGetSupplierRequest,
            Queries.supplier,
        ),
        _m(
            "/cosmos.bank.v1beta1.Query/Balance",
            cosmos_bank_pb2.QueryBalanceRequest,
            Queries.balance,
        ),
    ]
)
