"""gRPC calls to a Pocket node (``grpc.aio``): timeouts, failover, at-height reads, caching.

Every call has a deadline. Endpoints are tried in order, starting from the last one that
answered; a transport failure (Unavailable, DeadlineExceeded, Cancelled, ResourceExhausted)
moves to the next. The answer policy follows the Go miner (``query/errors.go``): only an
explicit **NotFound** means "absent" (``None``); any other status is "unknown", raised as
:class:`QueryFailedError` (a :class:`ChainUnavailableError`: retried later, never a crash). A
response that does not decode is :class:`MalformedResponseError`, naming the method.

Answers that can never change (anything read *at* a height: params history, difficulty and
compute units at a height, sessions) are cached by ``(method, request bytes, height)``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError, Message

from relayminer.chain.base import ChainUnavailableError
from relayminer.errors import RelayMinerError

__all__ = [
    "HEIGHT_HEADER",
    "GrpcQueryClient",
    "MalformedResponseError",
    "QueryFailedError",
]

log = logging.getLogger(__name__)

#: cosmos-sdk ``GRPCBlockHeightHeader``: read state at this height
HEIGHT_HEADER = "x-cosmos-block-height"
_MAX_RECEIVE = 10 * 1024 * 1024
_TRANSPORT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

R = TypeVar("R", bound=Message)


class QueryFailedError(ChainUnavailableError):
    """The node answered with an error status (or no endpoint answered)."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"{method}: {code}: {details}")
        self.method = method
        self.code = code
        self.details = details


class MalformedResponseError(RelayMinerError):
    """A node's response could not be decoded or lacks a required field."""

    def __init__(self, method: str, problem: str) -> None:
        super().__init__(f"malformed response from {method}: {problem}")
        self.method = method


def _redact(endpoint: str) -> str:
    """``user:password@host`` -> ``host``: credentials never reach a log or an error."""
    return endpoint.rsplit("@", 1)[-1]


class GrpcQueryClient:
    """Unary gRPC calls across several endpoints of the same chain."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        tls: bool = False,
        cache_size: int = 4096,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one gRPC endpoint is required")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._tls = tls
        self._channels: dict[str, Any] = {}
        self._preferred = 0
        self._cache: OrderedDict[tuple[str, bytes, int], Message] = OrderedDict()
        self._cache_size = cache_size
        self.last_success: float | None = None  # time.monotonic() of the last answer

    def _channel(self, endpoint: str) -> Any:
        channel = self._channels.get(endpoint)
        if channel is None:
            options = [
                ("grpc.max_receive_message_length", _MAX_RECEIVE),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 10_000),
            ]
            if self._tls:
                creds = grpc.ssl_channel_credentials()
                channel = grpc.aio.secure_channel(endpoint, creds, options=options)
            else:
                channel = grpc.aio.insecure_channel(endpoint, options=options)
            self._channels[endpoint] = channel
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    async def call(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        *,
        height: int | None = None,
        cache: bool = False,
    ) -> R | None:
        """Call ``method`` (``/pkg.Service/Method``); ``None`` on NotFound.

        ``height`` reads state at that height (``x-cosmos-block-height``). ``cache`` keeps the
        answer (immutable per request and height).
        """
        payload = request.SerializeToString(deterministic=True)
        cache_key = (method, payload, -1 if height is None else height)
        if cache:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
                return cast(R, hit)
        metadata = None if height is None else ((HEIGHT_HEADER, str(height)),)
        last_error: QueryFailedError | None = None
        count = len(self.endpoints)
        for attempt in range(count):
            index = (self._preferred + attempt) % count
            endpoint = self.endpoints[index]
            invoke = self._channel(endpoint).unary_unary(
                method,
                request_serializer=lambda _m: payload,
                response_deserializer=lambda raw: raw,
            )
            try:
                raw = await invoke(request, timeout=self.timeout, metadata=metadata)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    self._preferred = index
                    self.last_success = time.monotonic()
                    return None
                details = str(err.details() or "")
                if code in _TRANSPORT_CODES:
                    log.warning(
                        "gRPC endpoint failed, trying the next",
                        extra={"endpoint": _redact(endpoint), "method": method, "code": code.name},
                    )
                    last_error = QueryFailedError(method, code.name, details)
                    continue
                self._preferred = index
                raise QueryFailedError(method, code.name, details) from None
            self._preferred = index
            self.last_success = time.monotonic()
            try:
                response = response_type.FromString(bytes(raw))
            except DecodeError as err:
                raise MalformedResponseError(method, str(err) or "undecodable bytes") from None
            if cache:
                self._cache[cache_key] = response
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return response
        assert last_error is not None
        raise last_error
