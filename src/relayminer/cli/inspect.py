"""``relayminer inspect sessions|smst|streams``: what the miner holds in Redis, as tables or
JSON (read-only)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

from relayminer.cli.app import main
from relayminer.cli.startup import check_redis, open_redis

if TYPE_CHECKING:
    from rich.table import Table

    from relayminer.inspection import Row

__all__ = ["inspect_group"]


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

    from relayminer import inspection
    from relayminer.keys import KeyBuilder, Namespace

    namespace_keys = KeyBuilder(Namespace(base_prefix=namespace))

    async def collect() -> dict[str, list[Row]]:
        redis = open_redis(redis_url, max_connections=4)
        try:
            await check_redis(redis, redis_url)
            keys = KeyBuilder.for_client(redis, namespace_keys.ns)  # cluster: hash-tagged
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

    view = asyncio.run(collect())
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
    table.add_column("root", no_wrap=True)
    table.add_column("live root", no_wrap=True)
    table.add_column("sealed root", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("sum", justify="right")
    table.add_column("leaves", justify="right")
    table.add_column("nodes", justify="right")
    for r in rows:
        assert isinstance(r, SmstRow)
        table.add_row(
            _short(r.session_id),
            _short(r.root, 24),
            _short(r.live_root, 24),
            _short(r.sealed_root, 24),
            f"{r.count:,}",
            f"{r.sum:,}",
            f"{r.leaves:,}",
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
    """Per supplier and session: the root of every stored leaf (either layout), live and
    sealed roots, count, sum, leaves and nodes."""
    _inspect("smst", redis_url, supplier, namespace, json_output)


@inspect_group.command("streams")
@_inspect_options
def inspect_streams(
    redis_url: str, supplier: str | None, namespace: str, json_output: bool
) -> None:
    """Per supplier stream: length, pending, lag, consumers, dead letters."""
    _inspect("streams", redis_url, supplier, namespace, json_output)
