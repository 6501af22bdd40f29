from relayminer.proto import cosmos_base_pb2 as _cosmos_base_pb2
from relayminer.proto import pocket_shared_pb2 as _pocket_shared_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UndelegatingGatewayList(_message.Message):
    __slots__ = ("gateway_addresses",)
    GATEWAY_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    gateway_addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gateway_addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class Application(_message.Message):
    __slots__ = ("address", "stake", "service_configs", "delegatee_gateway_addresses", "pending_undelegations", "unstake_session_end_height", "per_session_spend_limit")
    class PendingUndelegationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: UndelegatingGatewayList
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[UndelegatingGatewayList, _Mapping]] = ...) -> None: ...
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STAKE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    DELEGATEE_GATEWAY_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    PENDING_UNDELEGATIONS_FIELD_NUMBER: _ClassVar[int]
    UNSTAKE_SESSION_END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PER_SESSION_SPEND_LIMIT_FIELD_NUMBER: _ClassVar[int]
    address: str
    stake: _cosmos_base_pb2.Coin
    service_configs: _containers.RepeatedCompositeFieldContainer[_pocket_shared_pb2.ApplicationServiceConfig]
    delegatee_gateway_addresses: _containers.RepeatedScalarFieldContainer[str]
    pending_undelegations: _containers.MessageMap[int, UndelegatingGatewayList]
    unstake_session_end_height: int
    per_session_spend_limit: _cosmos_base_pb2.Coin
    def __init__(self, address: _Optional[str] = ..., stake: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ..., service_configs: _Optional[_Iterable[_Union[_pocket_shared_pb2.ApplicationServiceConfig, _Mapping]]] = ..., delegatee_gateway_addresses: _Optional[_Iterable[str]] = ..., pending_undelegations: _Optional[_Mapping[int, UndelegatingGatewayList]] = ..., unstake_session_end_height: _Optional[int] = ..., per_session_spend_limit: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ...) -> None: ...

class QueryGetApplicationRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class QueryGetApplicationResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: Application
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ...) -> None: ...
