from relayminer.proto import pocket_shared_pb2 as _pocket_shared_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryGetSupplierRequest(_message.Message):
    __slots__ = ("operator_address", "dehydrated")
    OPERATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEHYDRATED_FIELD_NUMBER: _ClassVar[int]
    operator_address: str
    dehydrated: bool
    def __init__(self, operator_address: _Optional[str] = ..., dehydrated: _Optional[bool] = ...) -> None: ...

class QueryGetSupplierResponse(_message.Message):
    __slots__ = ("supplier",)
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    supplier: _pocket_shared_pb2.Supplier
    def __init__(self, supplier: _Optional[_Union[_pocket_shared_pb2.Supplier, _Mapping]] = ...) -> None: ...
