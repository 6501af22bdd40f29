"""The ``relayminer`` command group: global options, and failure reporting for every command.

Every command and sub-group is built from :class:`ReportingCommand`/:class:`ReportingGroup`,
so no command can leak a traceback or an unredacted URL: whatever escapes a command goes
through :func:`~relayminer.cli.failures.report_failures` (one line, exit code 1 or 2;
``--debug`` adds the traceback).
"""

from __future__ import annotations

from typing import Any

import click

from relayminer.cli.failures import report_failures
from relayminer.logs import configure_logging

__all__ = ["ReportingCommand", "ReportingGroup", "main"]


def _command_path(ctx: click.Context) -> str:
    names = []
    current: click.Context | None = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    return " ".join(["relayminer", *reversed(names)])


class ReportingCommand(click.Command):
    """A command whose failures become one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        with report_failures(_command_path(ctx)):
            return super().invoke(ctx)


class ReportingGroup(click.Group):
    """A group whose commands (and sub-groups) are reporting ones."""

    command_class = ReportingCommand
    group_class = type  # sub-groups are ReportingGroups too


@click.group(cls=ReportingGroup)
@click.version_option(package_name="relayminer", prog_name="relayminer")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure (and DEBUG logs).")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_json: bool, debug: bool) -> None:
    """relayminer: the miner of Pocket Network's HA RelayMiner.

    Errors are one line on stderr; exit codes: 0 success (also run/worker stopped by
    SIGTERM/SIGINT), 1 runtime failure, 2 configuration or usage error, 130/143 demo
    interrupted by SIGINT/SIGTERM. Shell completion: see docs/operations.md.
    """
    ctx.meta["relayminer.debug"] = debug
    configure_logging("DEBUG" if debug else log_level, json_lines=log_json)
