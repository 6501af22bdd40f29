from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class MinedRelayMessage(_message.Message):
    __slots__ = ("relay_hash", "relay_bytes", "compute_units_per_relay", "session_id", "session_end_height", "supplier_operator_address", "service_id", "application_address", "arrival_block_height", "published_at_unix_nano", "session_start_height")
    RELAY_HASH_FIELD_NUMBER: _ClassVar[int]
    RELAY_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_UNITS_PER_RELAY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    SESSION_START_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    relay_hash: bytes
    relay_bytes: bytes
    compute_units_per_relay: int
    session_id: str
    session_end_height: int
    supplier_operator_address: str
    service_id: str
    application_address: str
    arrival_block_height: int
    published_at_unix_nano: int
    session_start_height: int
    def __init__(self, relay_hash: _Optional[bytes] = ..., relay_bytes: _Optional[bytes] = ..., compute_units_per_relay: _Optional[int] = ..., session_id: _Optional[str] = ..., session_end_height: _Optional[int] = ..., supplier_operator_address: _Optional[str] = ..., service_id: _Optional[str] = ..., application_address: _Optional[str] = ..., arrival_block_height: _Optional[int] = ..., published_at_unix_nano: _Optional[int] = ..., session_start_height: _Optional[int] = ...) -> None: ...
