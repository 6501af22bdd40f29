"""``relayminer status``: one screen for a whole deployment (rich), or its JSON.

``--watch`` refreshes it every ``--interval`` seconds until Ctrl-C (exit code 0); a Redis
outage while watching is shown on the screen and retried. With ``--json --watch`` one JSON
document is printed per refresh (JSON lines).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from relayminer.cli.app import main
from relayminer.cli.signals import StopSignals, run_stoppable
from relayminer.cli.startup import check_redis, open_redis
from relayminer.inspection.status import (
    DeploymentStatus,
    Outcome,
    SupplierStatus,
    WindowSessions,
    collect_status,
)
from relayminer.logs.redact import redact_text
from relayminer.runtime.aio import wait_or_stop
from relayminer.sessions.model import SessionState

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from relayminer.keys import KeyBuilder

__all__ = ["render_status", "status"]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _states(states: dict[str, int]) -> Text:
    text = Text()
    for i, (name, n) in enumerate(states.items()):
        if i:
            text.append("  ")
        try:
            state = SessionState(name)
            style = "green" if state.is_success else "red" if state.is_failure else "yellow"
        except ValueError:
            style = "white"
        text.append(f"{name} ", style=style)
        text.append(str(n), style="bold")
    return text


def _window(label: str, w: WindowSessions | None) -> tuple[str, str, Text, str]:
    if w is None:
        return label, "-", Text("-", style="dim"), "-"
    heights = f"{w.session_start_height}..{w.session_end_height}"
    return label, heights, _states(w.states), f"{w.relays:,}"


def _outcome(o: Outcome | None) -> Text:
    if o is None:
        return Text("-", style="dim")
    style = {"failed": "red", "skipped": "yellow"}.get(o.result, "green")
    text = Text(o.result, style=style)
    text.append(f" ({o.state}, session end {o.session_end_height}", style="dim")
    if o.tx_hash:
        text.append(f", tx {o.tx_hash[:10]}…", style="dim")
    text.append(")", style="dim")
    if o.settlement_outcome:
        text.append(f" settled: {o.settlement_outcome}")
    return text


def _replicas_table(status: DeploymentStatus) -> Table:
    table = Table(title="replicas", title_justify="left")
    table.add_column("instance", no_wrap=True)
    table.add_column("alive")
    table.add_column("heartbeat", justify="right")
    table.add_column("suppliers (leases held)")
    for r in status.replicas:
        alive = Text("yes", style="green") if r.alive else Text("no", style="red")
        table.add_row(
            r.instance, alive, _age(r.heartbeat_age_seconds), ", ".join(r.suppliers) or "-"
        )
    if not status.replicas:
        table.caption = "no replica registered"
    return table


def _streams_table(suppliers: list[SupplierStatus]) -> Table:
    table = Table(title="suppliers", title_justify="left")
    table.add_column("supplier", no_wrap=True)
    table.add_column("owner", no_wrap=True)
    table.add_column("lease ttl", justify="right")
    for name in ("stream", "pending", "lag", "dead letters", "sessions"):
        table.add_column(name, justify="right")
    for s in suppliers:
        owner = Text(s.owner) if s.owner else Text("none", style="red")
        dead = Text(f"{s.dead_letters:,}", style="red" if s.dead_letters else "")
        table.add_row(
            s.supplier,
            owner,
            _age(s.lease_ttl_seconds),
            f"{s.stream_length:,}",
            f"{s.pending:,}",
            "-" if s.lag is None else f"{s.lag:,}",
            dead,
            f"{s.sessions:,}",
        )
    return table


def _sessions_table(suppliers: list[SupplierStatus]) -> Table:
    table = Table(title="sessions by window", title_justify="left")
    for name in ("supplier", "window", "heights"):
        table.add_column(name, no_wrap=True)
    table.add_column("states")
    table.add_column("relays", justify="right")
    for s in suppliers:
        table.add_row(s.supplier, *_window("current", s.current))
        table.add_row("", *_window("previous", s.previous))
    return table


def _outcomes_table(suppliers: list[SupplierStatus]) -> Table:
    table = Table(title="latest claim and proof", title_justify="left")
    table.add_column("supplier", no_wrap=True)
    table.add_column("claim")
    table.add_column("proof")
    for s in suppliers:
        table.add_row(s.supplier, _outcome(s.last_claim), _outcome(s.last_proof))
    return table


def render_status(status: DeploymentStatus) -> RenderableType:
    """The status screen: header, replicas, suppliers, sessions by window, latest outcomes."""
    taken = time.strftime("%H:%M:%S", time.localtime(status.taken_at))
    header = Text(f"relayminer status - namespace {status.namespace!r} at {taken}", style="bold")
    if status.chain is not None:
        header.append(
            f"   chain height {status.chain.height}, latest block "
            f"{_age(status.chain.block_age_seconds)} ago",
            style="cyan",
        )
    parts: list[RenderableType] = [header, _replicas_table(status)]
    if status.suppliers:
        parts += [
            _streams_table(status.suppliers),
            _sessions_table(status.suppliers),
            _outcomes_table(status.suppliers),
        ]
    else:
        parts.append(Text("no suppliers found in this namespace", style="yellow"))
    return Group(*parts)


@main.command()
@click.option("--redis-url", required=True, help="redis://host:port/db or unix:///path.sock")
@click.option("--namespace", default="ha", show_default=True, help="Base prefix of keys.")
@click.option("--supplier", default=None, help="Only this supplier [default: every one].")
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of tables.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between refreshes with --watch.",
)
def status(
    redis_url: str,
    namespace: str,
    supplier: str | None,
    json_output: bool,
    watch: bool,
    interval: float,
) -> None:
    """One screen for a deployment: replicas and their suppliers, stream lag, pending and dead
    letters, sessions by state in the current and previous windows, the latest claim and proof
    outcomes, and the chain height and block age (a simulated chain, when present)."""
    from relayminer.keys import KeyBuilder, Namespace

    namespace_keys = KeyBuilder(Namespace(base_prefix=namespace))

    async def show(signals: StopSignals) -> None:
        redis = open_redis(redis_url, max_connections=4)
        try:
            await check_redis(redis, redis_url)
            keys = KeyBuilder.for_client(redis, namespace_keys.ns)  # cluster: hash-tagged
            if not watch:
                _print(await collect_status(redis, keys=keys, supplier=supplier), json_output)
                return
            await _watch(redis, keys, supplier, json_output, interval, signals.stop)
        finally:
            await redis.aclose()

    run_stoppable(show)


def _print(status: DeploymentStatus, json_output: bool) -> None:
    if json_output:
        click.echo(json.dumps(status.as_dict(), sort_keys=True))
        return
    from rich.console import Console

    Console().print(render_status(status))


async def _watch(
    redis: Redis,
    keys: KeyBuilder,
    supplier: str | None,
    json_output: bool,
    interval: float,
    stop: asyncio.Event,
) -> None:
    from contextlib import nullcontext

    from redis.exceptions import RedisError
    from rich.console import Console
    from rich.live import Live

    live = None if json_output else Live(console=Console(), auto_refresh=False, screen=False)
    with live if live is not None else nullcontext():
        while not stop.is_set():
            view: RenderableType
            try:
                current = await collect_status(redis, keys=keys, supplier=supplier)
            except (RedisError, OSError) as err:
                view = Text(f"Redis unavailable, retrying: {redact_text(str(err))}", style="red")
                if json_output:
                    click.echo(json.dumps({"error": redact_text(str(err))}))
            else:
                view = render_status(current)
                if json_output:
                    click.echo(json.dumps(current.as_dict(), sort_keys=True))
            if live is not None:
                live.update(view, refresh=True)
            await wait_or_stop(stop, interval)
