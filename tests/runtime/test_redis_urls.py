"""Redis URLs (every scheme of the command line contract), redaction of passwords in errors, and
the blocking pool: more commands in flight than connections wait instead of failing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from relayminer.cli import main
from relayminer.config import ConfigError, parse_config
from relayminer.runtime.connections import (
    BlockingSentinelConnectionPool,
    connect,
    connect_cluster,
)
from relayminer.runtime.embedded import free_loopback_port
from relayminer.runtime.redis_url import (
    ClusterSettings,
    Endpoint,
    RedisUrlError,
    SentinelSettings,
    SingleServerSettings,
    parse_redis_url,
    redact_url,
)
from tests.conftest import RealServer

SECRET = "hunter2-Secret"

# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("redis://localhost", "redis"),
        (f"redis://:{SECRET}@h:6380/3?socket_timeout=2", "redis"),
        (f"rediss://user:{SECRET}@h", "rediss"),
        ("REDIS://h/1", "redis"),
        ("unix:///run/redis.sock?db=2", "unix"),
    ],
)
def test_single_server_urls(url: str, scheme: str) -> None:
    settings = parse_redis_url(url)
    assert isinstance(settings, SingleServerSettings)
    assert settings.scheme == scheme
    assert settings.url == url
    assert SECRET not in settings.redacted and SECRET not in repr(settings)


def test_sentinel_url_with_every_part() -> None:
    url = (
        f"redis-sentinel://ops:{SECRET}@10.0.0.1:26379,sentinel-b,[::1]:26380/my%20master/4"
        f"?sentinel_password=s%40pw&sentinel_username=watch"
    )
    settings = parse_redis_url(url)
    assert settings == SentinelSettings(
        sentinels=(
            Endpoint("10.0.0.1", 26379),
            Endpoint("sentinel-b", 26379),  # the default sentinel port
            Endpoint("::1", 26380),
        ),
        master_name="my master",
        db=4,
        redacted=redact_url(url),
        username="ops",
        password=SECRET,
        sentinel_username="watch",
        sentinel_password="s@pw",
    )
    assert [str(e) for e in settings.sentinels] == [
        "10.0.0.1:26379",
        "sentinel-b:26379",
        "[::1]:26380",
    ]
    assert SECRET not in repr(settings) and "s@pw" not in repr(settings)


def test_sentinel_url_minimal_and_percent_encoded_password() -> None:
    settings = parse_redis_url("redis-sentinel://:p%40ss%2Fw@h:1/mymaster/")
    assert isinstance(settings, SentinelSettings)
    assert (settings.master_name, settings.db, settings.username) == ("mymaster", 0, None)
    assert settings.password == "p@ss/w"
    assert settings.sentinel_password is None


def test_cluster_url() -> None:
    settings = parse_redis_url(f"redis-cluster://:{SECRET}@a:7000,b:7001,c")
    assert settings == ClusterSettings(
        nodes=(Endpoint("a", 7000), Endpoint("b", 7001), Endpoint("c", 6379)),
        redacted="redis-cluster://:***@a:7000,b:7001,c",
        password=SECRET,
    )
    user_only = parse_redis_url("redis-cluster://admin@a:7000/0")
    assert isinstance(user_only, ClusterSettings)
    assert (user_only.username, user_only.password) == ("admin", None)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        (f"http://:{SECRET}@h", "scheme must be one of"),
        (f"h:{SECRET}", "has no scheme"),
        (f"redis://:{SECRET}@h:0", "from 1 to 65535"),
        (f"redis://:{SECRET}@h:port", "from 1 to 65535"),
        (f"redis://:{SECRET}@h/x", "database must be a number"),
        (f"redis://:{SECRET}@h/0?db=x", "Invalid value for 'db'"),
        (f"redis://:{SECRET}@a:1,b:2", "several hosts need redis-sentinel://"),
        (f"redis://:{SECRET}@:6379", "has no host"),
        (f"redis://:{SECRET}@[::1/0", "IPv6"),
        (f"redis://:{SECRET}@[::1]x/0", "bad IPv6 address"),
        (f"unix://:{SECRET}@", "socket path is missing"),
        (f"redis-sentinel://:{SECRET}@h:1", "master name is missing"),
        (f"redis-sentinel://:{SECRET}@h:1/", "master name is missing"),
        (f"redis-sentinel://:{SECRET}@h:1/m/x", "database must be a number"),
        (f"redis-sentinel://:{SECRET}@h:1/m/0/extra", "/master_name or /master_name/db"),
        (f"redis-sentinel://:{SECRET}@/m", "no sentinel address"),
        (f"redis-sentinel://:{SECRET}@h:1,/m", "empty address"),
        (f"redis-sentinel://:{SECRET}@h:1,h:1/m", "listed twice"),
        (f"redis-sentinel://:{SECRET}@h:1/m?sentinel_pasword=x", "unknown option"),
        (f"redis-sentinel://:{SECRET}@h:1/m?novalue", "query string is malformed"),
        (f"redis-cluster://:{SECRET}@a:1/2", "only database 0"),
        (f"redis-cluster://:{SECRET}@a:1?x=1", "unknown option 'x' (known: none)"),
        (f"redis-cluster://:{SECRET}@", "no node address"),
        # a password with a raw reserved character: its tail must not leak as a "host"
        (f"redis://:{SECRET}/x@h/0", "percent-encode"),
        (f"redis://:{SECRET}?x@h/0", "percent-encode"),
        (f"redis://:{SECRET}#x@h/0", "percent-encode"),
        ("redis://h/0#frag", "'#' must be percent-encoded"),
    ],
)
def test_bad_urls_say_why_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(RedisUrlError) as info:
        parse_redis_url(url)
    message = str(info.value)
    assert reason in message
    assert SECRET not in message and "hunter2" not in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://h:1/0", "redis://h:1/0"),
        (f"redis://:{SECRET}@h:1/0", "redis://:***@h:1/0"),
        (f"redis://user:{SECRET}@h", "redis://user:***@h"),
        (f"redis://{SECRET}@h", "redis://***@h"),  # a lone user-info may be a password
        (f"redis://:{SECRET}/?#@h/0", "redis://:***@h/0"),
        (f"unix:///s.sock?db=1&password={SECRET}", "unix:///s.sock?db=1&password=***"),
        (f"x?sentinel_password={SECRET}&a=b", "x?sentinel_password=***&a=b"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- connect ----------------------------------------------------------------------------------


async def test_connect_gives_a_cluster_client_for_a_cluster_url() -> None:
    client = connect(f"redis-cluster://:{SECRET}@127.0.0.1:7000,127.0.0.1:7001", max_connections=9)
    try:
        assert isinstance(client, RedisCluster)
        nodes = {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()}
        assert nodes == {("127.0.0.1", 7000), ("127.0.0.1", 7001)}
        assert client.nodes_manager.connection_kwargs["password"] == SECRET
        assert client.nodes_manager.connection_kwargs["max_connections"] == 9
        assert SECRET not in repr(client)
    finally:
        await client.aclose()


async def test_connect_cluster_builds_a_cluster_client() -> None:
    client = connect_cluster(f"redis-cluster://:{SECRET}@127.0.0.1:7000,127.0.0.1:7001")
    try:
        assert isinstance(client, RedisCluster)
        nodes = {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()}
        assert nodes == {("127.0.0.1", 7000), ("127.0.0.1", 7001)}
    finally:
        await client.aclose()
    with pytest.raises(RedisUrlError, match="needs a redis-cluster://"):
        connect_cluster("redis://127.0.0.1:6379")


async def test_connect_sentinel_builds_a_blocking_sentinel_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"redis-sentinel://u:{SECRET}@127.0.0.1:1,127.0.0.1:2/mymaster/3?sentinel_password=sp"
    client = connect(url, max_connections=7, pool_timeout=2.5)
    pool = client.connection_pool
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert (pool.service_name, pool.is_master, pool.max_connections, pool.timeout) == (
        "mymaster",
        True,
        7,
        2.5,
    )
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (3, "u", SECRET)
    assert (kwargs["protocol"], kwargs["decode_responses"]) == (2, False)
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "sp"
    # closing the client closes the pool and the sentinel clients with it
    closed: list[object] = []
    manager = pool.sentinel_manager
    original = manager.aclose

    async def recording_aclose() -> None:
        closed.append(manager)
        await original()

    monkeypatch.setattr(manager, "aclose", recording_aclose)
    await client.aclose()
    assert closed == [manager]


def test_connect_rejects_a_bad_pool_size_or_timeout() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        connect("redis://h", max_connections=0)
    with pytest.raises(ValueError, match="pool_timeout"):
        connect("redis://h", pool_timeout=0)
    with pytest.raises(RedisUrlError):
        connect(f"redis://:{SECRET}@h/x")


# --- the pool, on the real server -------------------------------------------------------------


async def test_300_concurrent_commands_on_a_pool_of_8_wait_instead_of_failing(
    real_server: RealServer,
) -> None:
    client = connect(real_server.url, max_connections=8, pool_timeout=10)
    plain = aioredis.Redis.from_url(real_server.url, protocol=2, max_connections=8)
    try:
        await client.delete(b"pool:n")
        # the contrast: redis-py's plain asyncio pool fails the same load at once
        results = await asyncio.gather(
            *(plain.incr(b"pool:plain") for _ in range(300)), return_exceptions=True
        )
        assert any(isinstance(r, MaxConnectionsError) for r in results)

        replies = await asyncio.gather(*(client.incr(b"pool:n") for _ in range(300)))
        assert sorted(replies) == list(range(1, 301))
        pool = client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 8
    finally:
        await client.delete(b"pool:n", b"pool:plain")
        await client.aclose()
        await plain.aclose()


async def test_a_full_pool_fails_after_its_timeout(real_server: RealServer) -> None:
    client = connect(real_server.url, max_connections=1, pool_timeout=0.2)
    try:
        held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            with pytest.raises(RedisConnectionError, match="No connection available"):
                await client.ping()
        finally:
            await client.connection_pool.release(held)
        assert await client.ping()
    finally:
        await client.aclose()


async def test_aclose_disconnects_the_pool(real_server: RealServer) -> None:
    client = connect(real_server.url, max_connections=4)
    await asyncio.gather(*(client.ping() for _ in range(4)))
    pool = client.connection_pool
    assert any(c.is_connected for c in pool._available_connections)
    await client.aclose()
    assert not any(c.is_connected for c in pool._available_connections)


# --- configuration and command line -----------------------------------------------------------


def test_config_accepts_sentinel_and_cluster_naming_the_field_of_a_bad_url() -> None:
    for url in (
        f"redis-sentinel://:{SECRET}@127.0.0.1:26379/mymaster/0",
        f"redis-cluster://:{SECRET}@127.0.0.1:7000,127.0.0.1:7001",
    ):
        doc = {"suppliers": ["a"], "redis": {"url": url, "pool_timeout_seconds": 5}}
        config = parse_config(doc)
        assert config.redis.url == url
        assert config.redis.pool_timeout_seconds == 5
        assert SECRET not in repr(config)
    for bad, reason in [
        (f"redis-cluster://:{SECRET}@127.0.0.1:7000/3", "only database 0"),
        (f"redis-sentinel://:{SECRET}@127.0.0.1:26379", "master name is missing"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config({"suppliers": ["a"], "redis": {"url": bad}})
        assert "redis.url" in str(info.value) and reason in str(info.value)
        assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ({"smst": {"layout": "go"}}, "smst.layout: go is not supported on redis-cluster://"),
        ({"redis": {"wait_replicas": 1}}, "redis.wait_replicas is not supported on redis-cluster"),
    ],
)
def test_config_refuses_what_a_cluster_cannot_do(section: dict[str, Any], reason: str) -> None:
    url = f"redis-cluster://:{SECRET}@127.0.0.1:7000"
    doc: dict[str, Any] = {"suppliers": ["a"], **section}
    doc["redis"] = {**doc.get("redis", {}), "url": url}
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert reason in str(info.value) and SECRET not in str(info.value)
    doc["redis"]["url"] = "redis://127.0.0.1:6379/0"  # fine on one server
    parse_config(doc)


def test_inspect_does_not_print_the_password_of_an_unreachable_server() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_loopback_port()}/0"
    result = CliRunner().invoke(main, ["inspect", "sessions", "--redis-url", url])
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://:***@127.0.0.1" in result.output
    assert SECRET not in result.output


def test_inspect_reports_a_bad_url_without_a_traceback() -> None:
    result = CliRunner().invoke(
        main, ["inspect", "sessions", "--redis-url", f"redis://:{SECRET}@h/x"]
    )
    assert result.exit_code == 2  # a usage error (docs/operations.md, exit codes)
    assert "database must be a number" in result.output
    assert SECRET not in result.output
