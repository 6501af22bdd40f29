from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimProofStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING_VALIDATION: _ClassVar[ClaimProofStatus]
    VALIDATED: _ClassVar[ClaimProofStatus]
    INVALID: _ClassVar[ClaimProofStatus]
PENDING_VALIDATION: ClaimProofStatus
VALIDATED: ClaimProofStatus
INVALID: ClaimProofStatus

class SessionHeader(_message.Message):
    __slots__ = ("application_address", "service_id", "session_id", "session_start_block_height", "session_end_block_height")
    APPLICATION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_START_BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    application_address: str
    service_id: str
    session_id: str
    session_start_block_height: int
    session_end_block_height: int
    def __init__(self, application_address: _Optional[str] = ..., service_id: _Optional[str] = ..., session_id: _Optional[str] = ..., session_start_block_height: _Optional[int] = ..., session_end_block_height: _Optional[int] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("supplier_operator_address", "session_header", "root_hash", "proof_validation_status")
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    PROOF_VALIDATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    supplier_operator_address: str
    session_header: SessionHeader
    root_hash: bytes
    proof_validation_status: ClaimProofStatus
    def __init__(self, supplier_operator_address: _Optional[str] = ..., session_header: _Optional[_Union[SessionHeader, _Mapping]] = ..., root_hash: _Optional[bytes] = ..., proof_validation_status: _Optional[_Union[ClaimProofStatus, str]] = ...) -> None: ...

class MsgCreateClaim(_message.Message):
    __slots__ = ("supplier_operator_address", "session_header", "root_hash")
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    supplier_operator_address: str
    session_header: SessionHeader
    root_hash: bytes
    def __init__(self, supplier_operator_address: _Optional[str] = ..., session_header: _Optional[_Union[SessionHeader, _Mapping]] = ..., root_hash: _Optional[bytes] = ...) -> None: ...

class MsgSubmitProof(_message.Message):
    __slots__ = ("supplier_operator_address", "session_header", "proof")
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    supplier_operator_address: str
    session_header: SessionHeader
    proof: bytes
    def __init__(self, supplier_operator_address: _Optional[str] = ..., session_header: _Optional[_Union[SessionHeader, _Mapping]] = ..., proof: _Optional[bytes] = ...) -> None: ...

class RelayRequestMetadata(_message.Message):
    __slots__ = ("session_header", "signature", "supplier_operator_address")
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_header: SessionHeader
    signature: bytes
    supplier_operator_address: str
    def __init__(self, session_header: _Optional[_Union[SessionHeader, _Mapping]] = ..., signature: _Optional[bytes] = ..., supplier_operator_address: _Optional[str] = ...) -> None: ...

class RelayRequest(_message.Message):
    __slots__ = ("meta", "payload")
    META_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    meta: RelayRequestMetadata
    payload: bytes
    def __init__(self, meta: _Optional[_Union[RelayRequestMetadata, _Mapping]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class RelayResponseMetadata(_message.Message):
    __slots__ = ("session_header", "supplier_operator_signature")
    SESSION_HEADER_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    session_header: SessionHeader
    supplier_operator_signature: bytes
    def __init__(self, session_header: _Optional[_Union[SessionHeader, _Mapping]] = ..., supplier_operator_signature: _Optional[bytes] = ...) -> None: ...

class RelayResponse(_message.Message):
    __slots__ = ("meta", "payload", "payload_hash")
    META_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HASH_FIELD_NUMBER: _ClassVar[int]
    meta: RelayResponseMetadata
    payload: bytes
    payload_hash: bytes
    def __init__(self, meta: _Optional[_Union[RelayResponseMetadata, _Mapping]] = ..., payload: _Optional[bytes] = ..., payload_hash: _Optional[bytes] = ...) -> None: ...

class Relay(_message.Message):
    __slots__ = ("req", "res")
    REQ_FIELD_NUMBER: _ClassVar[int]
    RES_FIELD_NUMBER: _ClassVar[int]
    req: RelayRequest
    res: RelayResponse
    def __init__(self, req: _Optional[_Union[RelayRequest, _Mapping]] = ..., res: _Optional[_Union[RelayResponse, _Mapping]] = ...) -> None: ...
