from relayminer.proto import poktroll_pb2 as _poktroll_pb2
from relayminer.proto import pocket_application_pb2 as _pocket_application_pb2
from relayminer.proto import pocket_shared_pb2 as _pocket_shared_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Params(_message.Message):
    __slots__ = ("num_suppliers_per_session",)
    NUM_SUPPLIERS_PER_SESSION_FIELD_NUMBER: _ClassVar[int]
    num_suppliers_per_session: int
    def __init__(self, num_suppliers_per_session: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("header", "session_id", "session_number", "num_blocks_per_session", "application", "suppliers")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_PER_SESSION_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    SUPPLIERS_FIELD_NUMBER: _ClassVar[int]
    header: _poktroll_pb2.SessionHeader
    session_id: str
    session_number: int
    num_blocks_per_session: int
    application: _pocket_application_pb2.Application
    suppliers: _containers.RepeatedCompositeFieldContainer[_pocket_shared_pb2.Supplier]
    def __init__(self, header: _Optional[_Union[_poktroll_pb2.SessionHeader, _Mapping]] = ..., session_id: _Optional[str] = ..., session_number: _Optional[int] = ..., num_blocks_per_session: _Optional[int] = ..., application: _Optional[_Union[_pocket_application_pb2.Application, _Mapping]] = ..., suppliers: _Optional[_Iterable[_Union[_pocket_shared_pb2.Supplier, _Mapping]]] = ...) -> None: ...

class QueryParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryParamsResponse(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: Params
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class QueryGetSessionRequest(_message.Message):
    __slots__ = ("application_address", "service_id", "block_height")
    APPLICATION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    application_address: str
    service_id: str
    block_height: int
    def __init__(self, application_address: _Optional[str] = ..., service_id: _Optional[str] = ..., block_height: _Optional[int] = ...) -> None: ...

class QueryGetSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...
