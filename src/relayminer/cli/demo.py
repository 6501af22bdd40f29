"""``relayminer demo``: the whole system on one machine, with a live display and a summary.

Exit codes: 0 when every session was proved and settled and every relay mined; 1 when the
run finished but something did not hold (the reasons on stderr); 2 for a namespace that
already holds a simulated chain; 130 (SIGINT, Ctrl-C) or 143 (SIGTERM) when interrupted - the
partial summary is printed first. The embedded server runs in its own session, so Ctrl-C
reaches only the demo, which stops the load and the miner while Redis still answers.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

import click

from relayminer.cli.app import main
from relayminer.cli.failures import EXIT_CONFIG, CliFailure
from relayminer.cli.signals import StopSignals, run_stoppable
from relayminer.cli.startup import check_redis, embedded_server, open_redis

if TYPE_CHECKING:
    from rich.console import Console

    from relayminer.demo import DemoOptions, DemoSummary

__all__ = ["demo"]


@main.command()
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print the summary as one JSON object on stdout, and nothing else on stdout.",
)
@click.option("--suppliers", default=3, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--relays-per-second",
    default=200.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Relays published per second, over every supplier.",
)
@click.option(
    "--sessions",
    default=3,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Sessions of load (4 blocks each).",
)
@click.option(
    "--block-time",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds per block of the simulated chain.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of claim/proof txs the chain's mempool silently drops.",
)
@click.option(
    "--seed", default=1, show_default=True, type=int, help="Seeds the chain and the load."
)
@click.option(
    "--redis-url",
    default=None,
    help="Use this Redis (an empty namespace) instead of the embedded server.",
)
@click.option("--namespace", default="ha", show_default=True, help="Base prefix of every key.")
@click.option(
    "--chain",
    "chain_type",
    default="simulated",
    show_default=True,
    type=click.Choice(["simulated", "localnet"]),
    help="simulated: the miner drives the simulated chain in process; localnet: the miner "
    "talks to an in-process localnet over loopback through the Pocket chain client.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    json_output: bool,
    suppliers: int,
    relays_per_second: float,
    sessions: int,
    block_time: float,
    drop_rate: float,
    seed: int,
    redis_url: str | None,
    namespace: str,
    chain_type: str,
) -> None:
    """Run the whole system on one machine and print a summary.

    Starts a private Redis server (unless --redis-url is given), a simulated chain, a load
    generator publishing Go-format relays and one miner replica owning every supplier, runs
    SESSIONS sessions of load and waits until every session is proved and settled. Exits 0
    when every session ended proved or probabilistic_proved, the chain paid every one of those
    claims and every published relay was mined; 1 otherwise (the reasons go to stderr).
    Ctrl-C (or SIGTERM) stops it early: the partial summary is printed, exit code 130 (143).
    With --chain localnet the chain is served over CometBFT RPC and gRPC on loopback and the
    miner claims and proves through the real Pocket chain client (signed txs, real addresses).
    """
    from relayminer.demo import DemoOptions, interactive_console

    if chain_type == "localnet" and drop_rate:
        raise click.UsageError("--drop-rate applies to --chain simulated only")
    options = DemoOptions(
        suppliers=suppliers,
        relays_per_second=relays_per_second,
        sessions=sessions,
        block_time_seconds=block_time,
        drop_rate=drop_rate,
        seed=seed,
        namespace=namespace,
        chain="localnet" if chain_type == "localnet" else "simulated",
    )
    console = interactive_console(json_output)
    _demo_logging(ctx, console)
    server = embedded_server() if redis_url is None else None
    url = server.url if server is not None else redis_url
    assert url is not None
    if server is not None:
        click.echo(
            f"relayminer demo: embedded Redis at {url} (watch it: relayminer status "
            f"--redis-url {url} --namespace {namespace} --watch)",
            err=True,
        )
    try:
        summary, signals = run_stoppable(lambda s: _run_demo(options, url, console, s))
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        summary.redis = "embedded"
        summary.redis_server_pid = server.pid
    _print_summary(summary, json_output)
    if signals.received is not None:
        click.echo(f"relayminer demo: interrupted by {signals.received.name}", err=True)
        sys.exit(128 + int(signals.received))
    if not summary.ok:
        for problem in summary.problems:
            click.echo(f"relayminer demo: {problem}", err=True)
        sys.exit(1)


def _print_summary(summary: DemoSummary, json_output: bool) -> None:
    if json_output:
        click.echo(json.dumps(summary.as_dict(), sort_keys=False))
        return
    from rich.console import Console

    from relayminer.demo import render_summary

    Console().print(render_summary(summary))


def _demo_logging(ctx: click.Context, console: Console | None) -> None:
    """Quiet by default (warnings only, unless --log-level or --debug was given); with a live
    display, log lines go through its console so they scroll above it."""
    from relayminer.demo import ConsoleLogHandler

    root = logging.getLogger()
    top = ctx.find_root()
    quiet = top.get_parameter_source("log_level") in (None, click.core.ParameterSource.DEFAULT)
    if quiet and not top.meta.get("relayminer.debug"):
        root.setLevel(logging.WARNING)
    if console is not None and root.handlers:
        formatter = root.handlers[0].formatter
        root.handlers[:] = [ConsoleLogHandler(console, formatter)]


async def _run_demo(
    options: DemoOptions, url: str, console: Console | None, signals: StopSignals
) -> DemoSummary:
    from relayminer.demo import DemoError, run_demo, with_live_display

    redis = open_redis(url)
    try:
        await check_redis(redis, url)
        sink, live = with_live_display(console)
        with live:
            return await run_demo(redis, options, on_progress=sink, stop=signals.stop)
    except DemoError as err:
        raise CliFailure(str(err), EXIT_CONFIG) from None
    finally:
        await redis.aclose()
