"""``relayminer localnet --config FILE [--redis-url URL]``: a simulated Pocket node on loopback.

It serves the simulated chain over CometBFT RPC (HTTP and websocket) and gRPC until SIGTERM or
SIGINT (exit 0), and prints one JSON line on stdout when ready::

    {"rpc":"http://127.0.0.1:PORT","grpc":"127.0.0.1:PORT","websocket":"ws://127.0.0.1:PORT/websocket","chain_id":"pocket"}

Without ``--redis-url`` the state lives in a private embedded server that dies with the process;
with one, the chain survives restarts (genesis is created once; a restart with a different
configuration is refused, exit 2). An invalid configuration exits 2 and names the field; an
unreachable Redis exits 1 (docs/localnet.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relayminer.cli.app import main
from relayminer.cli.failures import EXIT_CONFIG, CliFailure
from relayminer.cli.signals import StopSignals, run_stoppable
from relayminer.cli.startup import check_redis, embedded_server, open_redis

if TYPE_CHECKING:
    from relayminer.chain.sim.node.genesis import LocalnetConfig

__all__ = ["localnet"]


async def _serve(config: LocalnetConfig, url: str, signals: StopSignals) -> None:
    from relayminer.chain.sim.errors import SimChainConfigMismatchError
    from relayminer.chain.sim.node.node import LocalNode

    redis = open_redis(url, max_connections=32)
    try:
        await check_redis(redis, url)
        node = LocalNode(redis, config)
        try:
            try:
                await node.start()
            except SimChainConfigMismatchError as err:
                raise CliFailure(
                    f"{err}; use the configuration the chain was created with, or an empty "
                    "database",
                    EXIT_CONFIG,
                ) from None
            click.echo(node.ready_line())
            sys.stdout.flush()
            await signals.stop.wait()
        finally:
            await node.stop()
    finally:
        await redis.aclose()


@main.command("localnet")
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
def localnet(config_path: Path, redis_url: str | None) -> None:
    """Serve a simulated Pocket chain over CometBFT RPC and gRPC on loopback.

    Prints one JSON line with the endpoints when ready; point a miner's chain.rpc_url and
    chain.grpc_endpoints at them. SIGTERM or SIGINT stops it (exit code 0).
    """
    from relayminer.chain.sim.node.genesis import LocalnetConfigError, load_localnet_config

    try:
        config = load_localnet_config(config_path)  # fail fast, before starting anything
    except LocalnetConfigError as err:
        raise CliFailure(str(err), EXIT_CONFIG) from None
    server = embedded_server() if redis_url is None else None
    url = server.url if server is not None else redis_url
    assert url is not None
    try:
        run_stoppable(lambda signals: _serve(config, url, signals))
    finally:
        if server is not None:
            server.stop()
