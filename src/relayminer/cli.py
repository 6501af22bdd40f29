"""The ``relayminer`` command line (click)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import click

from relayminer.logs import configure_logging


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
