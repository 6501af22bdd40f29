"""RelayPublisher: writes Go-format relays to ``ha:relays:{supplier}`` as the Go relayer does.

Used by tests, benchmarks and the demo's load generator (the production publisher is the Go
relayer). Each relay is one ``XADD <stream> * data <protobuf>`` (pocket-relay-miner
`transport/redis/publisher.go`);
batches go out as one non-transactional pipeline. Unlike the Go relayer this publisher never
sets a TTL on the stream: an EXPIRE on a stream drops its consumer group and pending list too;
the miner bounds the stream by ack-and-delete and by trimming.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer.errors import ClosedError, StoreError
from relayminer.keys import KeyBuilder
from relayminer.pipeline.relays import MinedRelayMessage


class RelayPublisher:
    def __init__(self, redis: Redis, key_builder: KeyBuilder | None = None) -> None:
        self._redis = redis
        self._keys = key_builder or KeyBuilder.for_client(redis)
        self._closed = False

    @staticmethod
    def _check(msg: MinedRelayMessage) -> None:
        if not isinstance(msg, MinedRelayMessage):
            raise TypeError(f"message must be a MinedRelayMessage, got {type(msg).__name__}")
        if not msg.session_id:
            raise ValueError("session_id is required")
        if msg.session_end_height <= 0:
            raise ValueError("session_end_height is required")
        if not msg.supplier_operator_address:
            raise ValueError("supplier_operator_address is required")

    async def publish(self, msg: MinedRelayMessage) -> bytes:
        """Publish one relay; returns its stream entry id."""
        ids = await self.publish_batch([msg])
        return ids[0]

    async def publish_batch(self, msgs: Sequence[MinedRelayMessage]) -> list[bytes]:
        """Publish relays in one pipeline (streams chosen per supplier); returns entry ids.

        Every message is validated before anything is sent; ``published_at_unix_nano`` is set
        to now when zero.
        """
        if self._closed:
            raise ClosedError("publisher is closed")
        for msg in msgs:
            self._check(msg)
        if not msgs:
            return []
        now = time.time_ns()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for msg in msgs:
                    if msg.published_at_unix_nano == 0:
                        msg.published_at_unix_nano = now
                    stream = self._keys.stream_key(msg.supplier_operator_address)
                    pipe.xadd(stream, {"data": msg.SerializeToString()})
                ids: list[bytes] = await pipe.execute()
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to publish {len(msgs)} relays: {err}") from err
        return ids

    async def close(self) -> None:
        self._closed = True
