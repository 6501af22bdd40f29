from relayminer.proto import cosmos_base_pb2 as _cosmos_base_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RPCType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_RPC: _ClassVar[RPCType]
    GRPC: _ClassVar[RPCType]
    WEBSOCKET: _ClassVar[RPCType]
    JSON_RPC: _ClassVar[RPCType]
    REST: _ClassVar[RPCType]
    COMET_BFT: _ClassVar[RPCType]

class ConfigOptions(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_CONFIG: _ClassVar[ConfigOptions]
    TIMEOUT: _ClassVar[ConfigOptions]
UNKNOWN_RPC: RPCType
GRPC: RPCType
WEBSOCKET: RPCType
JSON_RPC: RPCType
REST: RPCType
COMET_BFT: RPCType
UNKNOWN_CONFIG: ConfigOptions
TIMEOUT: ConfigOptions

class Params(_message.Message):
    __slots__ = ("num_blocks_per_session", "grace_period_end_offset_blocks", "claim_window_open_offset_blocks", "claim_window_close_offset_blocks", "proof_window_open_offset_blocks", "proof_window_close_offset_blocks", "supplier_unbonding_period_sessions", "application_unbonding_period_sessions", "compute_units_to_tokens_multiplier", "gateway_unbonding_period_sessions", "compute_unit_cost_granularity", "session_grid_anchor_height", "session_number_at_anchor")
    NUM_BLOCKS_PER_SESSION_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_END_OFFSET_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_WINDOW_OPEN_OFFSET_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_WINDOW_CLOSE_OFFSET_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PROOF_WINDOW_OPEN_OFFSET_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PROOF_WINDOW_CLOSE_OFFSET_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_UNBONDING_PERIOD_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_UNBONDING_PERIOD_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_UNITS_TO_TOKENS_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_UNBONDING_PERIOD_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_UNIT_COST_GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    SESSION_GRID_ANCHOR_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SESSION_NUMBER_AT_ANCHOR_FIELD_NUMBER: _ClassVar[int]
    num_blocks_per_session: int
    grace_period_end_offset_blocks: int
    claim_window_open_offset_blocks: int
    claim_window_close_offset_blocks: int
    proof_window_open_offset_blocks: int
    proof_window_close_offset_blocks: int
    supplier_unbonding_period_sessions: int
    application_unbonding_period_sessions: int
    compute_units_to_tokens_multiplier: int
    gateway_unbonding_period_sessions: int
    compute_unit_cost_granularity: int
    session_grid_anchor_height: int
    session_number_at_anchor: int
    def __init__(self, num_blocks_per_session: _Optional[int] = ..., grace_period_end_offset_blocks: _Optional[int] = ..., claim_window_open_offset_blocks: _Optional[int] = ..., claim_window_close_offset_blocks: _Optional[int] = ..., proof_window_open_offset_blocks: _Optional[int] = ..., proof_window_close_offset_blocks: _Optional[int] = ..., supplier_unbonding_period_sessions: _Optional[int] = ..., application_unbonding_period_sessions: _Optional[int] = ..., compute_units_to_tokens_multiplier: _Optional[int] = ..., gateway_unbonding_period_sessions: _Optional[int] = ..., compute_unit_cost_granularity: _Optional[int] = ..., session_grid_anchor_height: _Optional[int] = ..., session_number_at_anchor: _Optional[int] = ...) -> None: ...

class ParamsUpdate(_message.Message):
    __slots__ = ("effective_height", "params")
    EFFECTIVE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    effective_height: int
    params: Params
    def __init__(self, effective_height: _Optional[int] = ..., params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class QueryParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryParamsResponse(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: Params
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class QueryParamsAtHeightRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class QueryParamsAtHeightResponse(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: Params
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ...) -> None: ...

class ServiceMetadata(_message.Message):
    __slots__ = ("card",)
    CARD_FIELD_NUMBER: _ClassVar[int]
    card: bytes
    def __init__(self, card: _Optional[bytes] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("id", "name", "compute_units_per_relay", "owner_address", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_UNITS_PER_RELAY_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    compute_units_per_relay: int
    owner_address: str
    metadata: ServiceMetadata
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., compute_units_per_relay: _Optional[int] = ..., owner_address: _Optional[str] = ..., metadata: _Optional[_Union[ServiceMetadata, _Mapping]] = ...) -> None: ...

class ApplicationServiceConfig(_message.Message):
    __slots__ = ("service_id",)
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    def __init__(self, service_id: _Optional[str] = ...) -> None: ...

class ConfigOption(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: ConfigOptions
    value: str
    def __init__(self, key: _Optional[_Union[ConfigOptions, str]] = ..., value: _Optional[str] = ...) -> None: ...

class SupplierEndpoint(_message.Message):
    __slots__ = ("url", "rpc_type", "configs")
    URL_FIELD_NUMBER: _ClassVar[int]
    RPC_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    url: str
    rpc_type: RPCType
    configs: _containers.RepeatedCompositeFieldContainer[ConfigOption]
    def __init__(self, url: _Optional[str] = ..., rpc_type: _Optional[_Union[RPCType, str]] = ..., configs: _Optional[_Iterable[_Union[ConfigOption, _Mapping]]] = ...) -> None: ...

class ServiceRevenueShare(_message.Message):
    __slots__ = ("address", "rev_share_percentage")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REV_SHARE_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    address: str
    rev_share_percentage: int
    def __init__(self, address: _Optional[str] = ..., rev_share_percentage: _Optional[int] = ...) -> None: ...

class SupplierServiceConfig(_message.Message):
    __slots__ = ("service_id", "endpoints", "rev_share")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    REV_SHARE_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    endpoints: _containers.RepeatedCompositeFieldContainer[SupplierEndpoint]
    rev_share: _containers.RepeatedCompositeFieldContainer[ServiceRevenueShare]
    def __init__(self, service_id: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[SupplierEndpoint, _Mapping]]] = ..., rev_share: _Optional[_Iterable[_Union[ServiceRevenueShare, _Mapping]]] = ...) -> None: ...

class ServiceConfigUpdate(_message.Message):
    __slots__ = ("operator_address", "service", "activation_height", "deactivation_height")
    OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEACTIVATION_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    operator_address: str
    service: SupplierServiceConfig
    activation_height: int
    deactivation_height: int
    def __init__(self, operator_address: _Optional[str] = ..., service: _Optional[_Union[SupplierServiceConfig, _Mapping]] = ..., activation_height: _Optional[int] = ..., deactivation_height: _Optional[int] = ...) -> None: ...

class Supplier(_message.Message):
    __slots__ = ("owner_address", "operator_address", "stake", "services", "unstake_session_end_height", "service_config_history")
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STAKE_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    UNSTAKE_SESSION_END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CONFIG_HISTORY_FIELD_NUMBER: _ClassVar[int]
    owner_address: str
    operator_address: str
    stake: _cosmos_base_pb2.Coin
    services: _containers.RepeatedCompositeFieldContainer[SupplierServiceConfig]
    unstake_session_end_height: int
    service_config_history: _containers.RepeatedCompositeFieldContainer[ServiceConfigUpdate]
    def __init__(self, owner_address: _Optional[str] = ..., operator_address: _Optional[str] = ..., stake: _Optional[_Union[_cosmos_base_pb2.Coin, _Mapping]] = ..., services: _Optional[_Iterable[_Union[SupplierServiceConfig, _Mapping]]] = ..., unstake_session_end_height: _Optional[int] = ..., service_config_history: _Optional[_Iterable[_Union[ServiceConfigUpdate, _Mapping]]] = ...) -> None: ...
