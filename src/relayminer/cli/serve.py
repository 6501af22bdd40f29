"""``relayminer run`` (a miner replica) and ``relayminer worker`` (one relay worker).

Both check Redis with a bounded PING first (exit 1 within seconds when it is unreachable) and
stop cleanly on SIGTERM or SIGINT with exit code 0: the worker finishes the batch in hand, the
miner stops its pipelines and releases its leases. A second signal forces the stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relayminer.cli.app import main
from relayminer.cli.failures import EXIT_CONFIG, CliFailure
from relayminer.cli.signals import StopSignals, run_stoppable
from relayminer.cli.startup import check_redis, embedded_server, open_redis, start_metrics
from relayminer.logs import configure_logging
from relayminer.pipeline.worker import WorkerConfig
from relayminer.smst.layout import SMSTLayout

#: the worker's defaults, written once in WorkerConfig
_W = WorkerConfig()

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from relayminer.chain.factory import ChainConnection
    from relayminer.config import MinerConfig
    from relayminer.keys import KeyBuilder

__all__ = ["run", "worker"]

log = logging.getLogger("relayminer.cli")


def _tracer() -> Callable[[str, int], None] | None:
    """With RELAYMINER_TRACE=1 the worker prints one line per batch step to stdout (the crash
    tests kill it between steps)."""
    if os.environ.get("RELAYMINER_TRACE") != "1":
        return None

    def trace(step: str, size: int) -> None:
        sys.stdout.write(f"TRACE {step} {size}\n")
        sys.stdout.flush()

    return trace


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
@click.option(
    "--namespace",
    default="ha",
    show_default=True,
    help="Base prefix of every key (must match the relayers).",
)
@click.option(
    "--batch-size", default=_W.batch_size, show_default=True, type=click.IntRange(1, 5000)
)
@click.option("--block-ms", default=_W.block_ms, show_default=True, type=click.IntRange(1))
@click.option(
    "--claim-idle-ms", default=_W.claim_idle_ms, show_default=True, type=click.IntRange(0)
)
@click.option("--max-retries", default=_W.max_retries, show_default=True, type=click.IntRange(0))
@click.option(
    "--session-ttl-seconds",
    default=_W.session_ttl_seconds,
    show_default=True,
    type=click.IntRange(1),
)
@click.option(
    "--smst-layout",
    type=click.Choice([layout.value for layout in SMSTLayout]),
    default=_W.smst_layout.value,
    show_default=True,
    help="Where session trees live (must match the miners' smst.layout).",
)
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
    namespace: str,
    batch_size: int,
    block_ms: int,
    claim_idle_ms: int,
    max_retries: int,
    session_ttl_seconds: int,
    dedup_ttl_seconds: int | None,
    smst_layout: str,
) -> None:
    """Run one RelayWorker for SUPPLIER until SIGTERM/SIGINT (the batch in hand is finished;
    exit code 0)."""
    from relayminer.keys import Namespace
    from relayminer.pipeline.worker import RelayWorker
    from relayminer.runtime.gcpolicy import run_gc_freezer

    try:
        ns = Namespace(base_prefix=namespace)
    except ValueError as err:
        raise CliFailure(f"invalid --namespace {namespace!r}: {err}", EXIT_CONFIG) from None
    config = WorkerConfig(
        batch_size=batch_size,
        block_ms=block_ms,
        claim_idle_ms=claim_idle_ms,
        max_retries=max_retries,
        consumer_name=consumer_name,
        namespace=ns,
        session_ttl_seconds=session_ttl_seconds,
        dedup_ttl_seconds=dedup_ttl_seconds,
        smst_layout=SMSTLayout(smst_layout),
    )

    async def work(signals: StopSignals) -> None:
        stop = signals.stop
        redis = open_redis(redis_url)
        try:
            await check_redis(redis, redis_url)
            log.info(
                "worker started",
                extra={"supplier": supplier, "namespace": ns.base_prefix, "url": redis_url},
            )
            freezer = asyncio.create_task(run_gc_freezer(stop))
            try:
                relay_worker = RelayWorker(redis, supplier, config, trace=_tracer())
                await relay_worker.run(stop)
            finally:
                stop.set()
                await freezer
        finally:
            await redis.aclose()

    run_stoppable(work)


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration (see miner.example.yaml).",
)
@click.pass_context
def run(ctx: click.Context, config_path: Path) -> None:
    """Run a miner replica: leases, relay workers, claim/proof lifecycle, metrics.

    Several replicas sharing one Redis split the suppliers between them and take over a dead
    replica's suppliers within the lease TTL. SIGTERM or SIGINT stops it cleanly (exit code 0).
    An invalid configuration exits with code 2; an unreachable Redis with code 1.
    """
    from relayminer.config import load_config

    config = load_config(config_path)
    _configure_run_logging(ctx, config)
    server = embedded_server() if config.redis.url is None else None
    url = server.url if server is not None else config.redis.url
    assert url is not None
    try:
        run_stoppable(lambda signals: _run_miner(config, url, signals))
    finally:
        if server is not None:
            server.stop()


def _configure_run_logging(ctx: click.Context, config: MinerConfig) -> None:
    """The configuration's logging, unless ``--debug`` or ``--log-level`` was given."""
    root = ctx.find_root()
    level: str = config.logging.level
    if root.meta.get("relayminer.debug"):
        level = "DEBUG"
    elif root.get_parameter_source("log_level") is click.core.ParameterSource.COMMANDLINE:
        level = str(root.params["log_level"])
    json_lines = config.logging.json_lines or bool(root.params.get("log_json"))
    configure_logging(level, json_lines=json_lines)


async def _run_miner(config: MinerConfig, url: str, signals: StopSignals) -> None:
    from relayminer.keys import KeyBuilder
    from relayminer.runtime.miner import EvictionPolicyError, Miner, check_eviction_policy

    redis = open_redis(
        url,
        max_connections=config.redis.max_connections,
        pool_timeout=config.redis.pool_timeout_seconds,
    )
    connection = None
    try:
        await check_redis(redis, url)
        try:
            await check_eviction_policy(redis, allow_eviction=config.redis.allow_eviction)
        except EvictionPolicyError as err:
            raise CliFailure(str(err), EXIT_CONFIG) from None
        if config.metrics.enabled:
            start_metrics(config.metrics.host, config.metrics.port)
        keys = KeyBuilder.for_client(redis, config.redis.namespace)  # cluster: hash-tagged
        connection = await _open_chain(config, redis, keys)
        await Miner(config, redis, connection.chain, driver=connection.driver).run(signals.stop)
    finally:
        if connection is not None:
            await connection.close()
        await redis.aclose()


async def _open_chain(config: MinerConfig, redis: Redis, keys: KeyBuilder) -> ChainConnection:
    """The configured chain. A simulated chain stored with another configuration names what
    differs; a Pocket node serving another network or a supplier without a key exits 2; a
    node still unreachable after ``chain.start_timeout_seconds`` exits 1."""
    from relayminer.chain.factory import ChainSettingsError, ChainStartError, build_chain
    from relayminer.chain.settings import SimulatedChainSettings
    from relayminer.chain.sim.errors import SimChainConfigMismatchError
    from relayminer.chain.sim.setup import sim_chain_config
    from relayminer.chain.sim.state import SimChainKeys
    from relayminer.cli.startup import explain_chain_mismatch

    try:
        return await build_chain(config.chain, redis, keys=keys, suppliers=config.suppliers)
    except ChainSettingsError as err:  # a missing key, another network: retrying cannot help
        raise CliFailure(str(err), EXIT_CONFIG) from None
    except ChainStartError as err:  # exit 1: a supervisor restarts the miner
        raise CliFailure(str(err)) from None
    except SimChainConfigMismatchError:
        assert isinstance(config.chain, SimulatedChainSettings)
        sim_keys = SimChainKeys(keys)
        stored = await redis.get(sim_keys.config)
        configured = sim_chain_config(config.chain, config.suppliers).to_json()
        raise CliFailure(
            f"the simulated chain in Redis (keys {sim_keys.prefix}:*) was created with another "
            f"configuration: {explain_chain_mismatch(stored, configured)}; restore those "
            "settings (chain.*, suppliers), or use another redis.namespace.base_prefix or an "
            "empty database",
            EXIT_CONFIG,
        ) from None
