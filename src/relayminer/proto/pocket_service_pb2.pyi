from relayminer.proto import cosmos_base_pb2 as _cosmos_base_pb2
from relayminer.proto import cosmos_query_pb2 as _cosmos_query_pb2
from relayminer.proto import pocket_shared_pb2 as _pocket_shared_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Params(_message.Message):
    __slots__ = ("add_service_fee", "target_num_relays")
    ADD_SERVICE_FEE_FIELD_NUMBER: _ClassVar[int]
    TARGET_NUM_RELAYS_FIELD_NUMBER: _ClassVar[int]
    add_service_fee: _cosmos_base_pb2.Coin
    target_num_relays: int
    def __init__(self, add_service_fee: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ..., target_num_relays: _Optional[int] = ...) -> None: ...

class RelayMiningDifficulty(_message.Message):
    __slots__ = ("service_id", "block_height", "num_relays_ema", "target_hash")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_RELAYS_EMA_FIELD_NUMBER: _ClassVar[int]
    TARGET_HASH_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    block_height: int
    num_relays_ema: int
    target_hash: bytes
    def __init__(self, service_id: _Optional[str] = ..., block_height: _Optional[int] = ..., num_relays_ema: _Optional[int] = ..., target_hash: _Optional[bytes] = ...) -> None: ...

class RelayMiningDifficultyUpdate(_message.Message):
    __slots__ = ("effective_height", "difficulty")
    EFFECTIVE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    effective_height: int
    difficulty: RelayMiningDifficulty
    def __init__(self, effective_height: _Optional[int] = ..., difficulty: _Optional[_Union[RelayMiningDifficulty, _Mapping]] = ...) -> None: ...

class ServiceComputeUnitsPerRelayUpdate(_message.Message):
    __slots__ = ("effective_height", "service_id", "compute_units_per_relay")
    EFFECTIVE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_UNITS_PER_RELAY_FIELD_NUMBER: _ClassVar[int]
    effective_height: int
    service_id: str
    compute_units_per_relay: int
    def __init__(self, effective_height: _Optional[int] = ..., service_id: _Optional[str] = ..., compute_units_per_relay: _Optional[int] = ...) -> None: ...

class QueryParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryParamsResponse(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: Params
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class QueryGetServiceRequest(_message.Message):
    __slots__ = ("id", "dehydrated")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEHYDRATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    dehydrated: bool
    def __init__(self, id: _Optional[str] = ..., dehydrated: _Optional[bool] = ...) -> None: ...

class QueryGetServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _pocket_shared_pb2.Service
    def __init__(self, service: _Optional[_Union[_pocket_shared_pb2.Service, _Mapping]] = ...) -> None: ...

class QueryGetRelayMiningDifficultyRequest(_message.Message):
    __slots__ = ("serviceId",)
    SERVICEID_FIELD_NUMBER: _ClassVar[int]
    serviceId: str
    def __init__(self, serviceId: _Optional[str] = ...) -> None: ...

class QueryGetRelayMiningDifficultyResponse(_message.Message):
    __slots__ = ("relayMiningDifficulty",)
    RELAYMININGDIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    relayMiningDifficulty: RelayMiningDifficulty
    def __init__(self, relayMiningDifficulty: _Optional[_Union[RelayMiningDifficulty, _Mapping]] = ...) -> None: ...

class QueryGetRelayMiningDifficultyAtHeightRequest(_message.Message):
    __slots__ = ("serviceId", "blockHeight")
    SERVICEID_FIELD_NUMBER: _ClassVar[int]
    BLOCKHEIGHT_FIELD_NUMBER: _ClassVar[int]
    serviceId: str
    blockHeight: int
    def __init__(self, serviceId: _Optional[str] = ..., blockHeight: _Optional[int] = ...) -> None: ...

class QueryGetRelayMiningDifficultyAtHeightResponse(_message.Message):
    __slots__ = ("relayMiningDifficulty",)
    RELAYMININGDIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    relayMiningDifficulty: RelayMiningDifficulty
    def __init__(self, relayMiningDifficulty: _Optional[_Union[RelayMiningDifficulty, _Mapping]] = ...) -> None: ...

class QueryGetRelayMiningDifficultyHistoryRequest(_message.Message):
    __slots__ = ("serviceId", "pagination")
    SERVICEID_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    serviceId: str
    pagination: _cosmos_query_pb2.PageRequest
    def __init__(self, serviceId: _Optional[str] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryGetRelayMiningDifficultyHistoryResponse(_message.Message):
    __slots__ = ("relayMiningDifficultyHistory", "pagination")
    RELAYMININGDIFFICULTYHISTORY_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    relayMiningDifficultyHistory: _containers.RepeatedCompositeFieldContainer[RelayMiningDifficultyUpdate]
    pagination: _cosmos_query_pb2.PageResponse
    def __init__(self, relayMiningDifficultyHistory: _Optional[_Iterable[_Union[RelayMiningDifficultyUpdate, _Mapping]]] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class QueryGetComputeUnitsPerRelayAtHeightRequest(_message.Message):
    __slots__ = ("serviceId", "blockHeight")
    SERVICEID_FIELD_NUMBER: _ClassVar[int]
    BLOCKHEIGHT_FIELD_NUMBER: _ClassVar[int]
    serviceId: str
    blockHeight: int
    def __init__(self, serviceId: _Optional[str] = ..., blockHeight: _Optional[int] = ...) -> None: ...

class QueryGetComputeUnitsPerRelayAtHeightResponse(_message.Message):
    __slots__ = ("computeUnitsPerRelay",)
    COMPUTEUNITSPERRELAY_FIELD_NUMBER: _ClassVar[int]
    computeUnitsPerRelay: int
    def __init__(self, computeUnitsPerRelay: _Optional[int] = ...) -> None: ...

class QueryGetComputeUnitsPerRelayHistoryRequest(_message.Message):
    __slots__ = ("serviceId", "pagination")
    SERVICEID_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    serviceId: str
    pagination: _cosmos_query_pb2.PageRequest
    def __init__(self, serviceId: _Optional[str] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryGetComputeUnitsPerRelayHistoryResponse(_message.Message):
    __slots__ = ("computeUnitsPerRelayHistory", "pagination")
    COMPUTEUNITSPERRELAYHISTORY_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    computeUnitsPerRelayHistory: _containers.RepeatedCompositeFieldContainer[ServiceComputeUnitsPerRelayUpdate]
    pagination: _cosmos_query_pb2.PageResponse
    def __init__(self, computeUnitsPerRelayHistory: _Optional[_Iterable[_Union[ServiceComputeUnitsPerRelayUpdate, _Mapping]]] = ..., pagination: _Optional[_Union[_cosmos_query_pb2.PageResponse, _Mapping]] = ...) -> None: ...
