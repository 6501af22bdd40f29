"""The demo's terminal output (rich): the live progress panel and the final summary.

Kept apart from the run itself (:mod:`relayminer.demo.runner`), which only produces
:class:`~relayminer.demo.runner.DemoProgress` and :class:`~relayminer.demo.runner.DemoSummary`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from relayminer.demo.runner import DemoProgress, DemoSummary, ProgressSink
from relayminer.sessions.model import SessionState

__all__ = [
    "ConsoleLogHandler",
    "interactive_console",
    "render_progress",
    "render_summary",
    "with_live_display",
]

_UPOKT_PER_POKT: Final = 1_000_000


def _states_text(by_state: dict[str, int]) -> Text:
    if not by_state:
        return Text("-", style="dim")
    text = Text()
    for i, state in enumerate(sorted(by_state)):
        if i:
            text.append("  ")
        s = SessionState(state)
        style = "green" if s.is_success else "red" if s.is_failure else "yellow"
        text.append(f"{state} ", style=style)
        text.append(str(by_state[state]), style="bold")
    return text


def render_progress(p: DemoProgress) -> Table:
    """The live panel of the demo."""
    title = {
        "load": "relayminer demo - publishing relays",
        "settling": "relayminer demo - waiting for claims, proofs and settlement",
        "done": "relayminer demo - settled",
    }.get(p.phase, "relayminer demo")
    table = Table(title=title, show_header=False, box=None, padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    height = str(p.height)
    if p.settle_height:
        height += f"  (last settlement at {p.settle_height})"
    table.add_row("block height", height)
    table.add_row("relays published / mined", f"{p.relays_published:,} / {p.relays_mined:,}")
    table.add_row(
        "relays/s (published, mined)",
        f"{p.published_per_second:,.0f}, {p.mined_per_second:,.0f}",
    )
    table.add_row("sessions", _states_text(p.sessions_by_state))
    table.add_row("claims submitted / settled", f"{p.claims_submitted:,} / {p.claims_settled:,}")
    table.add_row("proofs submitted", f"{p.proofs_submitted:,}")
    table.add_row("elapsed", f"{p.elapsed_seconds:,.1f} s")
    return table


def _pokt(upokt: int) -> str:
    return f"{upokt / _UPOKT_PER_POKT:,.6f} POKT"


def render_summary(s: DemoSummary) -> Group:
    """The final summary: totals, sessions by state, rewards, and the verdict."""
    totals = Table(title="relayminer demo - summary", show_header=False, box=None, padding=(0, 2))
    totals.add_column(style="cyan", no_wrap=True)
    totals.add_column()
    totals.add_row("relays published", f"{s.relays_published:,}")
    mined_style = "green" if s.relays_mined == s.relays_published else "red"
    totals.add_row("relays mined", Text(f"{s.relays_mined:,}", style=mined_style))
    totals.add_row(
        "throughput", f"{s.relays_per_second:,.1f} relays/s over {s.load_seconds:,.1f} s of load"
    )
    totals.add_row("sessions", f"{s.sessions:,}")
    totals.add_row("sessions by state", _states_text(s.sessions_by_state))
    totals.add_row(
        "claims submitted / settled / expired",
        f"{s.claims_submitted:,} / {s.claims_settled:,} / {s.claims_expired:,}",
    )
    totals.add_row("proofs submitted", f"{s.proofs_submitted:,}")
    totals.add_row("blocks", f"{s.blocks:,} (height {s.start_height} -> {s.end_height})")
    totals.add_row("duration", f"{s.duration_seconds:,.1f} s")
    rewards = Table(title="rewards (supplier balances)")
    rewards.add_column("supplier")
    rewards.add_column("relays published", justify="right")
    rewards.add_column("balance", justify="right")
    for supplier, upokt in s.rewards_upokt.items():
        rewards.add_row(supplier, f"{s.published_per_supplier.get(supplier, 0):,}", _pokt(upokt))
    rewards.add_row("total", f"{s.relays_published:,}", _pokt(s.rewards_total_upokt), style="bold")
    if s.ok:
        verdict = Text("OK: every session was proved and settled, every relay was mined", "green")
    else:
        verdict = Text("FAILED: " + "; ".join(s.problems), style="bold red")
    return Group(totals, Text(), rewards, Text(), verdict)


class ConsoleLogHandler(logging.Handler):
    """Log records printed through a rich console (they then scroll above a live display)."""

    def __init__(self, console: Console, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.console = console
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(
                Text(self.format(record), style="dim"), soft_wrap=True, highlight=False
            )
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def interactive_console(json_output: bool) -> Console | None:
    """Where the live progress goes: stdout (stderr with ``--json``), only on a terminal."""
    console = Console(stderr=json_output)
    return console if console.is_terminal else None


def with_live_display(
    console: Console | None,
) -> tuple[ProgressSink | None, contextlib.AbstractContextManager[Any]]:
    """A progress sink updating a rich ``Live`` on ``console`` (nothing without a console)."""
    if console is None:
        return None, contextlib.nullcontext()
    from rich.live import Live

    live = Live(console=console, refresh_per_second=4, transient=False)

    def sink(p: DemoProgress) -> None:
        live.update(render_progress(p), refresh=True)

    return sink, live
