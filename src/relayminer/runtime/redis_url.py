"""Redis URLs: one parser for every deployment the miner can be pointed at.

Accepted schemes (the Go miner's):

- ``redis://[[user]:password@]host[:port][/db][?option=value...]`` and ``rediss://`` (TLS);
- ``unix://[[user]:password@]/path/to/socket[?db=N...]``;
- ``redis-sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db]
  [?sentinel_password=...&sentinel_username=...]``: the password authenticates to the master
  (and replicas); sentinels that have their own ``requirepass`` take ``sentinel_password``;
- ``redis-cluster://[[user]:password@]host:port[,host:port...]``.

Special characters in a password (``@ : / ? #``) must be percent-encoded, as in any URL.

:func:`parse_redis_url` returns a typed settings object; a malformed URL raises
:class:`RedisUrlError` naming what is wrong and quoting the URL only in redacted form (passwords
replaced by ``***``): URLs end up in configuration errors and logs, secrets must not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from redis.asyncio.connection import parse_url as redis_py_parse_url

from relayminer.errors import RelayMinerError
from relayminer.logs.redact import redact_url

SINGLE_SERVER_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis-sentinel"
CLUSTER_SCHEME = "redis-cluster"
SCHEMES = (*SINGLE_SERVER_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
DEFAULT_REDIS_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

_SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")


class RedisUrlError(RelayMinerError, ValueError):
    """A Redis URL is malformed; the message says why and never contains a password."""


@dataclass(frozen=True)
class Endpoint:
    """One ``host:port`` of a sentinel group or a cluster."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SingleServerSettings:
    """``redis://``, ``rediss://`` or ``unix://``: one server, handed to redis-py's ``from_url``."""

    scheme: Literal["redis", "rediss", "unix"]
    redacted: str
    #: the URL as given (it may hold a password: never log it, log ``redacted``)
    url: str = field(repr=False)


@dataclass(frozen=True)
class SentinelSettings:
    """``redis-sentinel://``: the master of ``master_name`` as the sentinels report it."""

    sentinels: tuple[Endpoint, ...]
    master_name: str
    db: int
    redacted: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClusterSettings:
    """``redis-cluster://``: seed nodes of a Redis Cluster (the rest is discovered)."""

    nodes: tuple[Endpoint, ...]
    redacted: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


RedisSettings = SingleServerSettings | SentinelSettings | ClusterSettings


def parse_redis_url(url: str) -> RedisSettings:
    """Parse and validate ``url``; raise :class:`RedisUrlError` saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise RedisUrlError("Redis URL is empty")
    expected = ", ".join(f"{s}://" for s in SCHEMES)
    if "://" not in url:  # not a URL at all: nothing can be told apart from a secret, quote none
        raise RedisUrlError(f"Redis URL has no scheme: it must start with one of {expected}")
    redacted = redact_url(url)
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise RedisUrlError(f"Redis URL {redacted!r}: scheme must be one of {expected}")
    try:
        parts = urlsplit(url)
    except ValueError as err:  # unbalanced IPv6 brackets and the like; the text has no secret
        raise RedisUrlError(f"Redis URL {redacted!r}: {err}") from None
    if "@" not in parts.netloc and "@" in url.partition("://")[2]:
        # A password holding a raw '/', '?' or '#' ends the host part early: the rest of the
        # password would be read as a host, path or option (and quoted in errors).
        raise RedisUrlError(
            f"Redis URL {redacted!r}: '@' outside the user-info; percent-encode '/', '?', '#' "
            "and '@' in a password or option (%2F, %3F, %23, %40)"
        )
    if parts.fragment:
        raise RedisUrlError(f"Redis URL {redacted!r}: a '#' must be percent-encoded (%23)")
    if scheme == SENTINEL_SCHEME:
        return _sentinel(parts, redacted)
    if scheme == CLUSTER_SCHEME:
        return _cluster(parts, redacted)
    return _single_server(url, scheme, parts, redacted)


# --- the three kinds ----------------------------------------------------------------------------


def _single_server(url: str, scheme: str, parts: SplitResult, redacted: str) -> RedisSettings:
    where = f"Redis URL {redacted!r}"
    if scheme == "unix":
        if not parts.path or parts.path == "/":
            raise RedisUrlError(f"{where}: the socket path is missing (unix:///path/to/sock)")
    else:
        hosts = _hosts_part(parts)
        if "," in hosts:
            raise RedisUrlError(
                f"{where}: several hosts need redis-sentinel:// or redis-cluster://, "
                f"{scheme}:// takes one"
            )
        if hosts:
            _endpoint(hosts, DEFAULT_REDIS_PORT, where)
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise RedisUrlError(f"{where}: the database must be a number, got {path!r}")
    try:  # query options (db, timeouts, TLS ...) as redis-py will read them
        redis_py_parse_url(url)
    except ValueError as err:
        raise RedisUrlError(f"{where}: {err}") from None
    single: Literal["redis", "rediss", "unix"] = (
        "unix" if scheme == "unix" else "rediss" if scheme == "rediss" else "redis"
    )
    return SingleServerSettings(scheme=single, redacted=redacted, url=url)


def _sentinel(parts: SplitResult, redacted: str) -> SentinelSettings:
    where = f"Redis URL {redacted!r}"
    sentinels = _endpoints(parts, DEFAULT_SENTINEL_PORT, where, "sentinel")
    segments = parts.path.split("/")[1:] if parts.path else []
    if segments and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash
    if not segments or not segments[0]:
        raise RedisUrlError(
            f"{where}: the master name is missing (redis-sentinel://host:port/master_name[/db])"
        )
    if len(segments) > 2:
        raise RedisUrlError(f"{where}: the path must be /master_name or /master_name/db")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise RedisUrlError(f"{where}: the database must be a number, got {segments[1]!r}")
        db = int(segments[1])
    options = _options(parts, _SENTINEL_OPTIONS, where)
    username, password = _credentials(parts)
    return SentinelSettings(
        sentinels=sentinels,
        master_name=unquote(segments[0]),
        db=db,
        redacted=redacted,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _cluster(parts: SplitResult, redacted: str) -> ClusterSettings:
    where = f"Redis URL {redacted!r}"
    nodes = _endpoints(parts, DEFAULT_REDIS_PORT, where, "node")
    if parts.path.strip("/") not in ("", "0"):
        raise RedisUrlError(f"{where}: a cluster has only database 0, drop the path")
    _options(parts, (), where)
    username, password = _credentials(parts)
    return ClusterSettings(nodes=nodes, redacted=redacted, username=username, password=password)


# --- pieces -------------------------------------------------------------------------------------


def _hosts_part(parts: SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


def _credentials(parts: SplitResult) -> tuple[str | None, str | None]:
    userinfo, at_sign, _ = parts.netloc.rpartition("@")
    if not at_sign:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:  # "user@host": a user name alone, as redis-py reads it
        return unquote(user) or None, None
    return unquote(user) or None, unquote(password) or None


def _endpoints(
    parts: SplitResult, default_port: int, where: str, what: str
) -> tuple[Endpoint, ...]:
    hosts = _hosts_part(parts)
    if not hosts:
        raise RedisUrlError(f"{where}: no {what} address (host:port[,host:port...])")
    endpoints = tuple(_endpoint(item, default_port, where) for item in hosts.split(","))
    if len(set(endpoints)) != len(endpoints):
        raise RedisUrlError(f"{where}: a {what} address is listed twice")
    return endpoints


def _endpoint(text: str, default_port: int, where: str) -> Endpoint:
    if not text:
        raise RedisUrlError(f"{where}: an empty address in the host list")
    if text.startswith("["):  # [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise RedisUrlError(f"{where}: bad IPv6 address {text!r} (use [addr]:port)")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
        if not host:
            raise RedisUrlError(f"{where}: address {text!r} has no host")
    if not port_text:
        return Endpoint(host, default_port)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise RedisUrlError(f"{where}: port of {text!r} must be a number from 1 to 65535")
    return Endpoint(host, int(port_text))


def _options(parts: SplitResult, allowed: tuple[str, ...], where: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise RedisUrlError(f"{where}: the query string is malformed") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise RedisUrlError(f"{where}: unknown option {name!r} (known: {known})")
        options[name] = value
    return options
