from relayminer.proto import cosmos_base_pb2 as _cosmos_base_pb2
from relayminer.proto import cosmos_query_pb2 as _cosmos_query_pb2
from relayminer.proto import poktroll_pb2 as _poktroll_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProofRequirementReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_REQUIRED: _ClassVar[ProofRequirementReason]
    PROBABILISTIC: _ClassVar[ProofRequirementReason]
    THRESHOLD: _ClassVar[ProofRequirementReason]

class ClaimProofStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLAIMED: _ClassVar[ClaimProofStage]
    PROVEN: _ClassVar[ClaimProofStage]
    SETTLED: _ClassVar[ClaimProofStage]
    EXPIRED: _ClassVar[ClaimProofStage]
NOT_REQUIRED: ProofRequirementReason
PROBABILISTIC: ProofRequirementReason
THRESHOLD: ProofRequirementReason
CLAIMED: ClaimProofStage
PROVEN: ClaimProofStage
SETTLED: ClaimProofStage
EXPIRED: ClaimProofStage

class Params(_message.Message):
    __slots__ = ("proof_request_probability", "proof_requirement_threshold", "proof_missing_penalty", "proof_submission_fee")
    PROOF_REQUEST_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PROOF_REQUIREMENT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROOF_MISSING_PENALTY_FIELD_NUMBER: _ClassVar[int]
    PROOF_SUBMISSION_FEE_FIELD_NUMBER: _ClassVar[int]
    proof_request_probability: float
    proof_requirement_threshold: _cosmos_base_pb2.Coin
    proof_missing_penalty: _cosmos_base_pb2.Coin
    proof_submission_fee: _cosmos_base_pb2.Coin
    def __init__(self, proof_request_probability: _Optional[float] = ..., proof_requirement_threshold: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ..., proof_missing_penalty: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ..., proof_submission_fee: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ...) -> None: ...

class Proof(_message.Message):
    __slots__ = ("supplier_operator_address", "session_header", "closest_merkle_proof")
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    CLOSEST_MERKLE_PROOF_FIELD_NUMBER: _ClassVar[int]
    supplier_operator_address: str
    session_header: _poktroll_pb2.SessionHeader
    closest_merkle_proof: bytes
    def __init__(self, supplier_operator_address: _Optional[str] = ..., session_header: _Optional[_Union[_poktroll_pb2.SessionHeader, _Mapping]] = ..., closest_merkle_proof: _Optional[bytes] = ...) -> None: ...

class QueryParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryParamsResponse(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: Params
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class QueryGetClaimRequest(_message.Message):
    __slots__ = ("session_id", "supplier_operator_address")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    supplier_operator_address: str
    def __init__(self, session_id: _Optional[str] = ..., supplier_operator_address: _Optional[str] = ...) -> None: ...

class QueryGetClaimResponse(_message.Message):
    __slots__ = ("claim",)
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    claim: _poktroll_pb2.Claim
    def __init__(self, claim: _Optional[_Union[_poktroll_pb2.Claim, _Mapping]] = ...) -> None: ...

class QueryAllClaimsRequest(_message.Message):
    __slots__ = ("pagination", "supplier_operator_address", "session_id", "session_end_height")
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    pagination: _cosmos_query_pb2.PageRequest
    supplier_operator_address: str
    session_id: str
    session_end_height: int
    def __init__(self, pagination: _Optional[_Union[_cosmos_query_pb2.PageRequest, _Mapping]] = ..., supplier_operator_address: _Optional[str] = ..., session_id: _Optional[str] = ..., session_end_height: _Optional[int] = ...) -> None: ...

class QueryAllClaimsResponse(_message.Message):
    __slots__ = ("claims", "pagination")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    claims: _containers.RepeatedCompositeFieldContainer[_poktroll_pb2.Claim]
    pagination: _cosmos_query_pb2.PageResponse
    def __init__(self, claims: _Optional[_Iterable[_Union[_poktroll_pb2.Claim, _Mapping]]] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class QueryGetProofRequest(_message.Message):
    __slots__ = ("session_id", "supplier_operator_address")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    supplier_operator_address: str
    def __init__(self, session_id: _Optional[str] = ..., supplier_operator_address: _Optional[str] = ...) -> None: ...

class QueryGetProofResponse(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: Proof
    def __init__(self, proof: _Optional[_Union[Proof, _Mapping]] = ...) -> None: ...

class QueryAllProofsRequest(_message.Message):
    __slots__ = ("pagination", "supplier_operator_address", "session_id", "session_end_height")
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    pagination: _cosmos_query_pb2.PageRequest
    supplier_operator_address: str
    session_id: str
    session_end_height: int
    def __init__(self, pagination: _Optional[_Union[_cosmos_query_pb2.PageRequest, _Mapping]] = ..., supplier_operator_address: _Optional[str] = ..., session_id: _Optional[str] = ..., session_end_height: _Optional[int] = ...) -> None: ...

class QueryAllProofsResponse(_message.Message):
    __slots__ = ("proofs", "pagination")
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    proofs: _containers.RepeatedCompositeFieldContainer[Proof]
    pagination: _cosmos_query_pb2.PageResponse
    def __init__(self, proofs: _Optional[_Iterable[_Union[Proof, _Mapping]]] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class MsgCreateClaimResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MsgSubmitProofResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
